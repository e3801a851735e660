"""The GPU check in one command: the cuda tests, CPU-vs-CUDA agreement of every compute analysis, and throughput.

    python benchmarks/device_check.py               # on a CUDA machine: planned for under 8 minutes on one H100
    python benchmarks/device_check.py --self-test   # CPU only: every part, CPU against CPU, at tiny sizes

On a lent GPU machine, from the repository root (one `run` call, timeout_s 540, everything it needs is in
that machine's image): set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py 2>&1 | tee
$OUT/device_check.log. Each section prints the seconds elapsed so far.

Agreement: each analysis runs once on the CPU and once on CUDA from the same seed and data (train 1 epoch,
gradients, landscape 5x5, hessian top-1, lesion, depth --quick at depth 20) and the largest relative difference
of its figures is compared with the tolerance stated in TOLERANCE (cuDNN convolutions may use TF32, whose
10-bit mantissa alone differs from float32 by ~1e-3; training compounds it). Throughput: images/s of
training (float32 and bf16 autocast) and of evaluation (the folded channels-last graph against the bare cuDNN
channels-last bf16 forward; goal: >= 50%) for resnet20/56 at width 16, with the fraction of the GPU's dense
bf16 / fp32 peak (PEAKS; FLOPs from netprobe's MAC count: 2 per MAC forward, 6 per MAC for a training step).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Largest relative difference CPU vs CUDA allowed per analysis (accuracies: absolute, in samples' share).
TOLERANCE = {"train": 5e-2, "gradients": 1e-2, "landscape": 1e-2, "hessian": 2e-2, "lesion": 1e-2, "depth": 5e-2}
# Dense peak TFLOP/s (bf16 tensor cores, fp32 without tensor cores) from NVIDIA's data sheets, by name part.
PEAKS = {"H200": (989.0, 67.0), "H100 SXM": (989.0, 67.0), "H100 PCIe": (756.0, 51.0), "H100": (989.0, 67.0),
         "A100": (312.0, 19.5), "L40S": (362.0, 91.6), "A10": (125.0, 31.2)}
SIZES = {  # the GPU run's settings, and the self-test's (a dry run of every code path on two CPU cores)
    "full": dict(width=16, samples=256, train=5000, batch=128, steps=30, repeats=3, depth_steps=150),
    "tiny": dict(width=2, samples=16, train=64, batch=16, steps=2, repeats=1, depth_steps=4),
}


def _data(size):
    from netprobe.data import Split, load_data

    data = load_data("synthetic", input_size=(3, 32, 32), seed=0)
    n = size["train"]
    return replace(data, train=Split(data.train.x[:n], data.train.y[:n]))


def _model(name, size, seed=0):
    from netprobe.zoo import load

    torch.manual_seed(seed)
    return load(name, width=size["width"])


def check_train(device, size) -> dict:
    """One epoch of `netprobe train`'s SGD: the epoch's train and test loss and accuracy."""
    from netprobe.train import fit

    h = fit(_model("resnet20", size), _data(size), epochs=1, batch_size=size["batch"], lr=0.1, seed=0,
            progress=False, device=device)
    return {"loss": h[["train_loss", "test_loss"]].to_numpy().ravel(),
            "accuracy": h[["train_acc", "test_acc"]].to_numpy().ravel()}


def check_gradients(device, size) -> dict:
    """Per-layer gradient norms at initialisation over 4 batches."""
    from netprobe.analysis.gradients.profile import gradient_profile, sample_batches

    data = _data(size)
    batches = sample_batches(data.train.x, data.train.y, size["samples"] // 4, 4, 0, device=device)
    return {"loss": gradient_profile(_model("resnet20", size), batches, device=device)["grad_norm"].to_numpy()}


def _trained(work: Path, size) -> str:
    """A checkpoint trained one epoch on the CPU (shared by the CPU and CUDA runs of the slice analyses)."""
    from netprobe.train import fit, save_checkpoint

    path = work.parent / f"resnet20-w{size['width']}.pt"
    if not path.exists():
        model = _model("resnet20", size)
        fit(model, _data(size), epochs=1, batch_size=size["batch"], lr=0.1, seed=0, progress=False)
        save_checkpoint(path, model, {"model": "resnet20", "options": {"width": size["width"]}, "data": "synthetic",
                                      "seed": 0})
    return str(path)


def check_landscape(device, size, work) -> dict:
    """A 5x5 filter-normalised surface around a trained resnet20."""
    from netprobe.analysis.surfaces.study import study

    s = study("resnet20", weights=[_trained(work, size)], steps=5, samples=size["samples"], seed=0, device=device)
    table = s.slices[0].table
    return {"loss": table["loss"].to_numpy(), "accuracy": table["accuracy"].to_numpy()}


def check_hessian(device, size, work) -> dict:
    """The top Hessian eigenvalue (power iteration) and a 4-probe trace of a trained resnet20."""
    from netprobe.analysis.hessian.study import study

    s = study("resnet20", weights=[_trained(work, size)], samples=size["samples"], batch_size=size["samples"] // 2,
              top=1, iters=20, probes=4, seed=0, device=device)
    return {"loss": s.table["value"].to_numpy()}


def check_lesion(device, size, work) -> dict:
    """Accuracy and loss with each block of a trained resnet20 deleted."""
    from netprobe.analysis.lesion.study import study

    s = study("resnet20", weights=[_trained(work, size)], samples=size["samples"], seed=0, device=device)
    return {"loss": s.single()["loss"].to_numpy(), "accuracy": s.single()["accuracy"].to_numpy()}


def check_depth(device, size, work) -> dict:
    """`depth --quick` at depth 20 (plain and residual): the logged training and test losses."""
    from netprobe.analysis.depth import Study, run_study
    from netprobe.analysis.depth.study import preset

    recipe = preset("quick", steps=size["depth_steps"], every=max(1, size["depth_steps"] // 5),
                    batch_size=size["batch"], snapshots=0)
    curves, _ = run_study(Study(depths=(20,), recipe=recipe), work, progress=False, device=device)
    return {"loss": curves[["train_loss", "test_loss"]].to_numpy().ravel(),
            "accuracy": curves["test_acc"].to_numpy()}


CHECKS = {"train": check_train, "gradients": check_gradients, "landscape": check_landscape,
          "hessian": check_hessian, "lesion": check_lesion, "depth": check_depth}


def difference(a: dict, b: dict) -> float:
    """The largest relative difference between the figures of two runs ('accuracy': absolute)."""
    import numpy as np

    worst = 0.0
    for key in a:
        x, y = np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float)
        gap = np.abs(x - y) if key == "accuracy" else np.abs(x - y) / np.maximum(np.abs(x), 1e-12)
        worst = max(worst, float(gap.max()) if gap.size else 0.0)
    return worst


def agreement(devices, size, tmp: Path) -> list[dict]:
    """One row per analysis: its difference between the two devices against its tolerance, and the seconds each
    device took; then whether training twice on the second device gives the same bits."""
    import inspect

    rows = []
    for name, check in CHECKS.items():
        runs, seconds = [], []
        for i, device in enumerate(devices):
            work = tmp / f"{name}-{i}"
            extra = (work,) if "work" in inspect.signature(check).parameters else ()
            start = time.perf_counter()
            runs.append(check(device, size, *extra))
            seconds.append(time.perf_counter() - start)
        diff = difference(*runs)
        rows.append({"check": name, "max_rel_diff": f"{diff:.2e}", "tolerance": f"{TOLERANCE[name]:.0e}",
                     "ok": diff <= TOLERANCE[name], "seconds": " / ".join(f"{t:.1f}" for t in seconds)})
        if name == "train":
            again = check(devices[1], size)
            same = all((runs[1][k] == again[k]).all() for k in again)
            rows.append({"check": f"train twice on {devices[1]}", "max_rel_diff": f"{difference(runs[1], again):.2e}",
                         "tolerance": "0 (same bits)", "ok": same, "seconds": ""})
    return rows


def _images_per_s(step, batch: int, steps: int, repeats: int, device) -> float:
    """Median images/s of `steps` calls of `step()` (after one warm-up call), over `repeats` timings."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    sync()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def _peak(device) -> tuple[float, float] | None:
    """(bf16, fp32) dense peak TFLOP/s of the GPU, or None (the CPU, a GPU not in PEAKS)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in PEAKS.items() if part in name), None)


def _train_rate(name, size, device, amp: bool) -> float:
    from netprobe.train import train_epoch

    model = _model(name, size).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    batch = size["batch"]
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    order = torch.zeros(batch, dtype=torch.int64)
    return _images_per_s(lambda: train_epoch(model, optimizer, x, y, batch_size=batch, order=order, lr=0.01,
                                             first_step=0, total_steps=1, amp=amp),
                         batch, size["steps"], size["repeats"], device)


def _eval_rates(name, size, device) -> tuple[float, float]:
    """(folded channels-last float32 `FastEval`, bare channels-last bf16 forward) images/s, batch 4x training's."""
    from netprobe.analysis.evaluation import FastEval

    model = _model(name, size).to(device).eval()
    batch = 4 * size["batch"]
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast = FastEval(model)
        folded = _images_per_s(lambda: fast(x), batch, size["steps"], size["repeats"], device)
        bare = _model(name, size).to(device).eval().to(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 convolutions are slow on CPUs
        bare, xb = bare.to(dtype), x.to(dtype)
        reference = _images_per_s(lambda: bare(xb), batch, size["steps"], size["repeats"], device)
    return folded, reference


def throughput(device, size) -> list[dict]:
    """Images/s of training and evaluation of resnet20/56 and the fraction of the device's peak they reach."""
    from netprobe import load, summary

    peak = _peak(device)
    rows = []
    for name in ("resnet20", "resnet56"):
        macs = summary(load(name, width=size["width"]), (1, 3, 32, 32)).totals.macs
        rates = {"train fp32": (_train_rate(name, size, device, False), 6, 1),
                 "train bf16 amp": (_train_rate(name, size, device, device.type == "cuda"), 6, 0)}
        folded, bare = _eval_rates(name, size, device)
        rates |= {"eval folded fp32": (folded, 2, 1), "eval bare bf16": (bare, 2, 0)}
        for what, (rate, per_mac, fp32) in rates.items():
            tflops = rate * macs * per_mac / 1e12
            rows.append({"model": f"{name} w{size['width']}", "what": what, "images_per_s": round(rate),
                         "tflops": round(tflops, 2),
                         "of_peak": f"{tflops / peak[fp32]:.1%}" if peak else "n/a"})
        rows.append({"model": f"{name} w{size['width']}", "what": "folded / bare bf16 (goal >= 50%)",
                     "images_per_s": "", "tflops": "", "of_peak": f"{folded / bare:.0%}"})
    return rows


def cuda_tests() -> str:
    """Run the tests marked `cuda`; pytest's last line ('N passed ...')."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_cuda.py")], cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 5):
        print(done.stdout[-4000:], file=sys.stderr)
    return lines[-1] if lines else f"pytest exited {done.returncode}"


def main() -> int:
    """Check, measure, print the tables; 1 if a test failed or a difference is above its tolerance."""
    import tempfile

    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true",
                        help="Run every part on the CPU only (CPU against CPU, tiny sizes): a dry run of the script.")
    args = parser.parse_args()
    if not args.self_test and not torch.cuda.is_available():
        print(f"device_check: torch {torch.__version__} sees no CUDA device here: run it on a GPU machine "
              "(or --self-test for the CPU dry run)", file=sys.stderr)
        return 2
    devices = ("cpu", "cpu") if args.self_test else ("cpu", "cuda")
    size = SIZES["tiny" if args.self_test else "full"]
    where = "CPU only (self-test)" if args.self_test else torch.cuda.get_device_name(0)
    print(f"device check on {where}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    start = time.perf_counter()
    tests = cuda_tests()
    print(f"cuda tests: {tests}  [{time.perf_counter() - start:.0f} s]")
    with tempfile.TemporaryDirectory() as tmp:
        rows = agreement(devices, size, Path(tmp))
    table = pd.DataFrame(rows)
    print(f"\nCPU vs {devices[1]} agreement  [{time.perf_counter() - start:.0f} s]")
    print(table.to_string(index=False))
    speed = pd.DataFrame(throughput(torch.device(devices[1]), size))
    print(f"\nthroughput on {where}  [{time.perf_counter() - start:.0f} s]")
    print(speed.to_string(index=False))
    failed = "failed" in tests or "error" in tests or not table["ok"].all()
    return 1 if failed and not args.self_test else 0


if __name__ == "__main__":
    sys.exit(main())
