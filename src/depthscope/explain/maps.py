"""Map-valued attributions: Grad-CAM on a chosen layer, Occlusion, and a random control."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution, register_method
from depthscope.models.hooks import forward_hooks
from depthscope.ops.fills import fill_image
from depthscope.seeding import generator


def get_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    net = getattr(model, "net", model)
    layers = dict(net.named_modules())
    if name not in layers or not name:
        sample = ", ".join(n for n in list(layers)[1:12])
        raise InputError(f"layer {name!r} not found in {type(net).__name__}; layers include: {sample}, ...")
    return layers[name]


@register_method("gradcam", needs_grad=True, uses_layer=True)
def gradcam(fmodel: torch.nn.Module, x: torch.Tensor, layer: str | None = None) -> Attribution:
    """Grad-CAM (Selvaraju et al.) adapted to regression: channel weights are the spatial mean of
    ``d y_t / d A``; the map ``ReLU(sum_c w_c A_c)`` is upsampled bilinearly to the input image. ``layer``
    defaults to the model's declared Grad-CAM layer (``ModelInfo.gradcam_layer``; METER: ``encoder.conv2``)."""
    layer = layer or getattr(getattr(fmodel.model, "info", None), "gradcam_layer", None)
    if not layer:
        raise InputError(
            "gradcam needs a layer and this model declares none: pass options {'gradcam': {'layer': NAME}} "
            "(CLI: --option gradcam.layer=NAME)"
        )
    module = get_layer(fmodel.model, layer)
    store: dict[str, torch.Tensor] = {}
    with forward_hooks([(layer, module)], lambda _n, _a, _k, out: store.__setitem__("a", out)):
        out = fmodel(x.detach())
    act = store["a"]
    maps = []
    for t in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[0, t], act, retain_graph=t < out.shape[1] - 1)
        maps.append(F.relu((g.mean(dim=(-2, -1), keepdim=True) * act).sum(1, keepdim=True)).detach())
    cam = torch.cat(maps)  # (T, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return Attribution("gradcam", cam, {"layer": layer})


def _occlusion_windows(h: int, w: int, window: int | None, stride: int | None) -> int:
    window = window or max(1, min(h, w) // 8)
    stride = stride or max(1, window // 2)
    return len(range(0, h - window + 1, stride)) * len(range(0, w - window + 1, stride))


@register_method(
    "occlusion", needs_grad=False, seeded=True,
    cost=lambda o, h, w: (1 + _occlusion_windows(h, w, o["window"], o["stride"]), 0),
)  # fmt: skip
@torch.no_grad()
def occlusion(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    window: int | None = None,
    stride: int | None = None,
    baseline: str = "mean",
    chunk_size: int = 4,
    seed: int = 0,
) -> Attribution:
    """Occlusion (Zeiler & Fergus): slide a ``window`` square of ``baseline`` with ``stride``; each pixel gets
    the mean drop ``y_t(x) - y_t(x_occluded)`` (metres) over the windows covering it. All occluded images run
    in batches of ``chunk_size``; the loop is over window positions, never pixels."""
    h, w = x.shape[-2:]
    window = window or max(1, min(h, w) // 8)
    stride = stride or max(1, window // 2)
    if window > min(h, w):
        raise InputError(f"occlusion window {window} is larger than the {h}x{w} image")
    base = fill_image(x, baseline, seed, "baseline_noise", what="baseline")
    ys = list(range(0, h - window + 1, stride))
    xs = list(range(0, w - window + 1, stride))
    ys[-1], xs[-1] = h - window, w - window  # cover the last rows/columns too
    boxes = [(y, xx) for y in ys for xx in xs]
    ref = fmodel(x)[0]  # (T,)
    total = torch.zeros(ref.shape[0], 1, h, w, dtype=x.dtype, device=x.device)
    count = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    for s in range(0, len(boxes), chunk_size):
        chunk = boxes[s : s + chunk_size]
        batch = x.repeat(len(chunk), 1, 1, 1)
        for k, (y, xx) in enumerate(chunk):
            batch[k, :, y : y + window, xx : xx + window] = base[0, :, y : y + window, xx : xx + window]
        drops = ref - fmodel(batch)  # (b, T)
        for k, (y, xx) in enumerate(chunk):
            total[:, 0, y : y + window, xx : xx + window] += drops[k].view(-1, 1, 1)
            count[..., y : y + window, xx : xx + window] += 1
    return Attribution("occlusion", total / count, {"window": window, "stride": stride, "n_windows": len(boxes)})


@register_method("random", needs_grad=False, seeded=True, cost=lambda o, h, w: (0, 0))
def random_map(fmodel: torch.nn.Module, x: torch.Tensor, seed: int = 0) -> Attribution:
    """Uniform random map in [0, 1): the control every real method must beat."""
    n_t = fmodel.weights.shape[0]
    g = generator(seed, "random_map")
    return Attribution("random", torch.rand((n_t, 1, *x.shape[-2:]), generator=g).to(x), {"seed": seed})
