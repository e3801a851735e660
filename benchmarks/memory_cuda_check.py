"""netprobe memory --allocator cuda against a real CUDA training step: max_memory_allocated and max_memory_reserved.

    python benchmarks/memory_cuda_check.py [--predict] [--only NAME,NAME]

For each zoo model below, at the batch stated next to it, with SGD momentum and with Adam (both on PyTorch's
default multi-tensor path on CUDA, as netprobe's --allocator cuda assumes): the model is built on the GPU with
zero weights, one warm-up step creates the optimizer state and the cuDNN/cuBLAS handles, the gradients are set
to None and the cache emptied (only the segments of live tensors stay reserved, the start netprobe models),
the peak statistics are reset, and one step runs (forward, cross-entropy, backward, optimizer step), as
netprobe traces it. Errors are (predicted - real) / real. `extra MiB` is what the GPU holds at the start of the
step beyond the parameters, buffers, optimizer state and input (cuBLAS workspace): part of the real peaks,
not of netprobe's. Kernel workspaces during the step (cuDNN) are the other expected difference.
--predict prints netprobe's predictions only (no GPU needed). Without CUDA the check says so in one line and
exits 0. About a minute on one H100.
"""

from __future__ import annotations

import sys
import time

import torch

from netprobe.analysis.memory.allocator import round_size
from netprobe.analysis.memory.cost import Settings, make_optimizer, training_cost
from netprobe.analysis.memory.step import loss_of
from netprobe.zoo import list_models, load, model_spec

# (model, batch): CIFAR nets at 128, ImageNet nets at a batch that fits 24 GB with Adam, U-Net at its 572x572.
CASES = [("lenet5", 256), ("resnet20", 128), ("resnet56", 128), ("resnet110", 128), ("alexnet", 64),
         ("vgg11_bn", 32), ("vgg16", 32), ("resnet18", 64), ("resnet50", 32), ("resnet152", 16),
         ("densenet121", 32), ("googlenet", 32), ("unet", 1)]
OPTIMIZERS = ("momentum", "adam")
MIB = 2**20


def predicted(name: str, batch: int, optimizer: str):
    """netprobe's CUDA allocator model of one step: (allocated peak, reserved peak) in bytes."""
    with torch.device("meta"):
        model = load(name)
    cost = training_cost(model, (batch, *model_spec(name).input_size), Settings(optimizer=optimizer, allocator="cuda"))
    return cost.cuda.allocated, cost.cuda.reserved


def step(model, x, optimizer) -> None:
    """One training step as netprobe traces it."""
    loss = loss_of(model(x))
    loss.backward()
    del loss
    optimizer.step()


def measured(name: str, batch: int, optimizer_name: str):
    """(max allocated, max reserved, bytes held at the start beyond the step's own tensors) of one real step."""
    with torch.device("meta"):
        model = load(name)
    model = model.to_empty(device="cuda").train()
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.zero_()
    x = torch.zeros((batch, *model_spec(name).input_size), device="cuda")
    optimizer = make_optimizer(optimizer_name, model.parameters(), foreach=True)
    step(model, x, optimizer)
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor) and t.is_cuda]
    own = sum(round_size(t.untyped_storage().nbytes()) for t in [*model.parameters(), *model.buffers(), x, *state])
    extra = torch.cuda.memory_allocated() - own
    step(model, x, optimizer)
    torch.cuda.synchronize()
    peaks = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    del model, x, optimizer, state
    torch.cuda.empty_cache()
    return (*peaks, extra)


def _error(pred: int, real: int) -> str:
    return f"{(pred - real) / real:+.2%}"


def main() -> int:
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    cases = [(n, b) for n, b in CASES if only is None or n in only]
    unknown = sorted(set(only or ()) - set(list_models()))
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    predict_only = "--predict" in sys.argv
    if not predict_only and not torch.cuda.is_available():
        print("memory_cuda_check: no CUDA device here, nothing to check (--predict prints the predictions)")
        return 0
    device = "predictions only" if predict_only else torch.cuda.get_device_name()
    print(f"torch {torch.__version__}, {device}; MiB = 2**20 bytes\n")
    print("| model | batch | optimizer | allocated MiB: predicted | real | error | reserved MiB: predicted | real "
          "| error | extra MiB |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    start = time.perf_counter()
    for name, batch in cases:
        for optimizer in OPTIMIZERS:
            alloc, reserved = predicted(name, batch, optimizer)
            cells = [f"{alloc / MIB:,.1f}", "", "", f"{reserved / MIB:,.1f}", "", "", ""]
            if not predict_only:
                real_alloc, real_reserved, extra = measured(name, batch, optimizer)
                cells = [f"{alloc / MIB:,.1f}", f"{real_alloc / MIB:,.1f}", _error(alloc, real_alloc),
                         f"{reserved / MIB:,.1f}", f"{real_reserved / MIB:,.1f}", _error(reserved, real_reserved),
                         f"{extra / MIB:,.1f}"]
            print(f"| {name} | {batch} | {optimizer} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
