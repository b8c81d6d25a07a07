import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from depthscope.efficiency import count_macs, count_params, measure_latency, param_bytes, peak_activation_bytes
from depthscope.models import load_model


def test_meter_xxs_params_exact(meter_nyu):
    assert count_params(meter_nyu) == 713_464
    # float32 parameters and BN buffers; num_batches_tracked are int64
    by_dtype = param_bytes(meter_nyu)
    n_float = sum(t.numel() for t in meter_nyu.state_dict().values() if t.dtype == torch.float32)
    assert by_dtype["float32"] == 4 * n_float and set(by_dtype) <= {"float32", "int64"}


def test_macs_of_a_hand_computed_net():
    # conv 3->8, 3x3, 16x16 output: 8*16*16*3*9 MACs; linear 2048->10: 20480; a 4x4 @ 4x5 matmul: 80
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * 16 * 16, 10)

        def forward(self, x):
            y = self.fc(self.conv(x).flatten(1))
            return y + (torch.ones(4, 4) @ torch.ones(4, 5)).sum()

    c = count_macs(Net(), torch.rand(1, 3, 16, 16))
    assert c.macs == 8 * 16 * 16 * 3 * 9 + 2048 * 10 + 80 and c.flops == 2 * c.macs


@pytest.mark.parametrize("name", ["meter-xxs-nyu", "meter-s"])
def test_macs_agree_with_fvcore_operator_by_operator(name):
    """fvcore counts one 'flop' per MAC. Convolutions, linear layers and attention matmuls agree exactly; fvcore
    also counts batch_norm, layer_norm and upsample_bilinear2d, which FLOP conventions for conv nets (and
    ours) leave out: those are the whole difference, and under 5 %."""
    model = load_model(name, pretrained=False)
    x = torch.rand(1, 3, 192, 256)
    ours = count_macs(model, x)
    fv = FlopCountAnalysis(model, x)
    fv.unsupported_ops_warnings(False)
    fv.uncalled_modules_warnings(False)
    by = fv.by_operator()
    assert ours.by_op["convolution"] == by["conv"]
    assert ours.by_op.get("addmm", 0) + ours.by_op.get("mm", 0) == by["linear"]
    assert ours.by_op["bmm"] == by["matmul"]  # attention QK^T and AV
    uncounted = {"batch_norm", "layer_norm", "upsample_bilinear2d"}
    assert set(by) - {"conv", "linear", "matmul"} <= uncounted
    assert ours.macs + sum(by[k] for k in uncounted if k in by) == fv.total()
    assert abs(fv.total() - ours.macs) / fv.total() < 0.05


def test_peak_activation_memory_hand_computed():
    x = torch.randn(64, 1000)
    net = torch.nn.Sequential(torch.nn.Linear(1000, 2000), torch.nn.ReLU(), torch.nn.Linear(2000, 10))
    # the first Linear's output and the ReLU's output are alive together; weights and input are not counted
    assert peak_activation_bytes(net, x)[0] == 2 * 64 * 2000 * 4
    net[1] = torch.nn.ReLU(inplace=True)
    assert peak_activation_bytes(net, x)[0] == 64 * 2000 * 4 + 64 * 10 * 4


def test_meter_peak_memory_grows_with_input(meter_nyu):
    small = peak_activation_bytes(meter_nyu, torch.rand(1, 3, 192, 256))[0]
    large = peak_activation_bytes(meter_nyu, torch.rand(2, 3, 192, 256))[0]
    assert 0 < small < large <= 2 * small + 1024


def test_latency_records_setup(meter_nyu):
    lat = measure_latency(meter_nyu, torch.rand(1, 3, 192, 256), warmup=1, repeats=3)
    assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms
    assert lat.device == "cpu" and lat.threads == torch.get_num_threads() and lat.repeats == 3
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(meter_nyu, torch.rand(1, 3, 192, 256), repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: runs on the GPU machine")
def test_cuda_latency_and_memory(meter_nyu):
    model = meter_nyu.to("cuda")
    x = torch.rand(1, 3, 192, 256, device="cuda")
    lat = measure_latency(model, x, warmup=3, repeats=5)
    assert lat.device.startswith("cuda") and lat.median_ms > 0
    peak, method = peak_activation_bytes(model, x)
    assert peak > 0 and "cuda" in method


def test_a_kitti_model_is_profiled_on_its_input_crop_by_default():
    from depthscope.efficiency import profile_model

    kitti = load_model("meter-xxs-kitti", pretrained=False)
    row = profile_model(kitti, counts_only=True)  # its network input, 192x636, is smaller than its crop
    assert row["input_size"] == [352, 1216] and row["network_input_size"] == [192, 636]
