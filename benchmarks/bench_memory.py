"""netprobe memory: the estimate's cost against `summary` at two batch sizes, and its CPU peak against the
profiler's memory events of a real training step.

    python benchmarks/bench_memory.py [--times | --heavy]

Times are CPU seconds of this process (time.process_time; the wall clock on a shared machine measures the
neighbours), after one warm-up trace (imports and the first Python meta kernels, ~2 s, once per process):
`summary` and the estimate (Adam, the default, and SGD) are run in turn, REPEAT times, and each keeps its
best, so a burst of load elsewhere hits all three alike; the ratio is estimate / summary (--times: only
this table). The peak check runs a real CPU step (zero weights, batch 2, one thread) after a warm-up step, as
tests/analysis/memory/test_memory.py does. --heavy runs that test's saved-bytes and FlopCounterMode check on the models it
skips for time (VGG-13/16/19, resnet152, resnet1202, DenseNet-161/201; minutes, 2 GB).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from netprobe.analysis.counting.summary import summary  # noqa: E402
from netprobe.analysis.memory.cost import Settings, training_cost  # noqa: E402
from netprobe.zoo import model_spec  # noqa: E402

TIMED = ("resnet56", "resnet152", "vgg16", "densenet121", "googlenet")
PEAKS = (("lenet5", "sgd"), ("lenet5", "adam"), ("resnet20", "sgd"), ("resnet20", "adam"), ("resnet18", "sgd"),
         ("resnet18", "adam"), ("vgg11_bn", "sgd"), ("densenet121", "sgd"), ("googlenet", "adam"))


REPEAT = 7


def interleaved(fns) -> list[float]:
    """Best CPU time of each function, the functions run in turn REPEAT times."""
    best = [float("inf")] * len(fns)
    for _ in range(REPEAT):
        for i, fn in enumerate(fns):
            start = time.process_time()
            fn()
            best[i] = min(best[i], time.process_time() - start)
    return best


def timings() -> None:
    """The estimate's cost against `summary` on the same meta model, at batch 1 and 64."""
    from zoo_helpers import meta_model

    print("| model | batch | summary s | memory s (adam) | ratio | memory s (sgd) | ratio |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name in TIMED:
        model, size = meta_model(name), model_spec(name).input_size
        for batch in (1, 64):
            shape = (batch, *size)
            s, adam, sgd = interleaved([lambda: summary(model, shape),
                                        lambda: training_cost(model, shape, Settings(optimizer="adam")),
                                        lambda: training_cost(model, shape, Settings(optimizer="sgd"))])
            print(f"| {name} | {batch} | {s:.4f} | {adam:.4f} | {adam / s:.1f}x | {sgd:.4f} | {sgd / s:.1f}x |")


def heavy() -> None:
    """The zoo test's exact checks on the models it skips."""
    from test_memory import HEAVY, _real, _saved_storages, _size
    from torch.utils.flop_counter import FlopCounterMode
    from zoo_helpers import meta_model

    print("| model | saved bytes (meta = real) | 2 x backward MACs = FlopCounterMode |\n|---|---:|---|")
    for name in sorted(HEAVY):
        size = _size(name)
        cost = training_cost(meta_model(name), size, Settings(optimizer="sgd"))
        saved, loss = _saved_storages(_real(name), torch.zeros(size))
        with FlopCounterMode(display=False) as counter:
            loss.backward()
        same = 2 * cost.totals.backward_macs == counter.get_total_flops()
        print(f"| {name} | {cost.totals.saved_bytes:,} = {saved:,}: {cost.totals.saved_bytes == saved} | {same} |")


def main() -> None:
    from test_memory import _profiled_peak, _real, _size
    from zoo_helpers import meta_model

    torch.set_num_threads(1)
    if "--heavy" in sys.argv:
        heavy()
        return
    training_cost(meta_model("lenet5"), (1, 1, 32, 32))
    summary(meta_model("lenet5"), (1, 1, 32, 32))
    timings()
    if "--times" in sys.argv:
        return
    print("\n| model | optimizer | predicted peak | profiler peak | difference |\n|---|---|---:|---:|---:|")
    for name, optimizer in PEAKS:
        size = _size(name)
        cost = training_cost(meta_model(name), size, Settings(optimizer=optimizer))
        real = _profiled_peak(_real(name), torch.zeros(size), optimizer)
        gap = real - cost.totals.peak_bytes
        print(f"| {name} | {optimizer} | {cost.totals.peak_bytes:,} | {real:,} | {gap:,} B ({gap / real:.2%}), "
              f"peak in {cost.totals.peak_phase} |")


if __name__ == "__main__":
    main()
