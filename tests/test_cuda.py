"""CUDA: the folded evaluation path, CPU-vs-CUDA agreement within benchmarks/device_check.py's TOLERANCE,
repeatable training, bf16 autocast, and checkpoints saved on the GPU. Skipped without CUDA (conftest.py)."""

import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cuda

_spec = importlib.util.spec_from_file_location(
    "device_check", Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py")
device_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(device_check)
TINY = device_check.SIZES["tiny"]


def _resnet(width=4):
    from netprobe.zoo import load

    torch.manual_seed(0)
    return load("resnet20", width=width)


def test_fast_eval_on_cuda_is_the_folded_graph_and_matches_eager():
    from netprobe.analysis.evaluation import FastEval

    model = _resnet().cuda().eval()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        fast = FastEval(model)
        got, want = fast(fast.layout(x)), model(x)
    assert fast.mode == "folded"  # no oneDNN fusion on CUDA
    # cuDNN may run float32 convolutions in TF32 (10-bit mantissa): 2e-3 of the largest logit
    assert (got - want).abs().max() <= 2e-3 * want.abs().max()


@pytest.mark.parametrize("name", list(device_check.CHECKS))
def test_cpu_and_cuda_agree_within_the_stated_tolerance(name, tmp_path):
    check = device_check.CHECKS[name]
    runs = []
    for i, device in enumerate(("cpu", "cuda")):
        extra = (tmp_path / str(i),) if name in ("landscape", "hessian", "lesion", "depth") else ()
        runs.append(check(device, TINY, *extra))
    assert device_check.difference(*runs) <= device_check.TOLERANCE[name]


def test_training_twice_on_cuda_gives_the_same_bits():
    first, second = (device_check.check_train("cuda", TINY) for _ in range(2))
    assert all((first[k] == second[k]).all() for k in first)


def test_bf16_autocast_trains_close_to_float32():
    amp, fp32 = [], []
    for out, flag in ((amp, True), (fp32, False)):
        from netprobe.train import fit

        out.append(fit(_resnet(), device_check._data(TINY), epochs=1, batch_size=16, lr=0.1, seed=0,
                       progress=False, device="cuda", amp=flag)["train_loss"].iloc[0])
    assert abs(amp[0] - fp32[0]) <= 5e-2 * abs(fp32[0])


def test_a_checkpoint_saved_on_cuda_loads_into_a_cpu_model(tmp_path):
    from netprobe.train import load_weights, save_checkpoint

    model = _resnet().cuda()
    path = save_checkpoint(tmp_path / "gpu.pt", model, {"model": "resnet20", "options": {"width": 4}})
    cpu = _resnet()
    torch.nn.init.zeros_(cpu.fc.weight)
    load_weights(cpu, path)
    assert torch.equal(cpu.fc.weight, model.fc.weight.cpu())


def test_taylor_mode_z_hessian_z_on_cuda_equals_the_products():
    import torch.nn.functional as F

    from netprobe.analysis.hessian.hessian import hvp_operator, parameters
    from netprobe.analysis.hessian.taylor import quadratic_form

    model = _resnet().cuda().double().eval()
    x, y = torch.randn(4, 3, 32, 32, device="cuda", dtype=torch.float64), torch.tensor([0, 1, 2, 3], device="cuda")
    params = parameters(model)
    z = (torch.randint(0, 2, (sum(p.numel() for p in params),)) * 2 - 1).double().cuda()
    expected = float(z @ hvp_operator(model, F.cross_entropy, [(x, y)], params)(z))
    assert quadratic_form(model, F.cross_entropy, [(x, y)], params)(z) == pytest.approx(expected, rel=1e-9)
