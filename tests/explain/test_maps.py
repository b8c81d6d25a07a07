import torch
from captum.attr import LayerGradCam, Occlusion

from depthscope.explain import explain, target_model
from depthscope.explain.maps import get_layer


def test_occlusion_equals_captum(meter_nyu, small_image, float32_noise):
    x = small_image[..., :64, :96].contiguous()
    fm = target_model(meter_nyu, x, "mean")
    ours = explain(meter_nyu, x, "occlusion", options={"occlusion": {"window": 16, "stride": 16, "baseline": "black"}})
    ref = Occlusion(fm).attribute(x, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16), baselines=0, target=0)
    # Captum occludes all channels together and spreads the drop to each channel; ours is one map.
    # Each value is a difference of two float32 mean depths of ~3 m, ours computed in batches of 4, Captum's one
    # image per call: each may be off by the model's float32 rounding (measured against float64, ~1e-6 m here;
    # seen: a 7.2e-7 m gap on a fresh clone), so 4x that bounds the gap. A wrong window or baseline moves the
    # values by the drops themselves, 1e-3..1e-2 m.
    atol = 4 * float32_noise(fm, torch.cat([x, torch.zeros_like(x)]))
    torch.testing.assert_close(ours["occlusion"].raw[:, 0], ref[:, 0], rtol=1e-4, atol=atol)


def test_gradcam_equals_captum_layer_gradcam(meter_nyu, small_image):
    fm = target_model(meter_nyu, small_image, "mean")
    ours = explain(meter_nyu, small_image, "gradcam")["gradcam"]
    cam = LayerGradCam(fm, get_layer(meter_nyu, "encoder.conv2")).attribute(
        small_image, target=0, relu_attributions=True
    )
    ref = torch.nn.functional.interpolate(cam, size=small_image.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours.raw, ref, rtol=1e-4, atol=1e-8)


def test_random_control_is_seeded(meter_nyu, small_image):
    a = explain(meter_nyu, small_image, "random")["random"].raw
    b = explain(meter_nyu, small_image, "random")["random"].raw
    assert torch.equal(a, b) and a.shape == (1, 1, 240, 320)
