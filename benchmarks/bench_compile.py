"""Does compiling pay once compiled? FastEval's fused eager forward against its torch.compile'd one, steady state.

    python benchmarks/bench_compile.py --model resnet20 --batch-size 64 --repeats 5

Both evaluate the same model (BatchNorm folded) on the same batch of the embedded synthetic data in eval and
inference mode: "fused" with each convolution fused with its add and ReLU into a oneDNN primitive (FastEval's
default), "compiled" through `torch.compile` (inductor). The first two calls are timed apart (fusion, or
compilation: inductor's on-disk cache may be warm from an earlier run); then the best of --repeats runs of 20
forward passes each, alternating.
"""

from __future__ import annotations

import time

import torch

import netprobe
from harness import model_parser
from netprobe.analysis.evaluation import FastEval
from netprobe.data import load_data


def main() -> None:
    args = model_parser(__doc__, model="resnet20", batch_size=64, repeats=5).parse_args()
    spec = netprobe.model_spec(args.model)
    x = load_data("synthetic", spec.input_size, seed=0).train.x[:args.batch_size]
    torch.manual_seed(0)
    model = netprobe.load(args.model, **({"plain": True} if args.plain else {})).eval()
    runs = {"fused": FastEval(model), "compiled": FastEval(model, compile=True)}
    best = dict.fromkeys(runs, 0.0)
    with torch.inference_mode():
        batches = {name: run.layout(x) for name, run in runs.items()}
        first = {}
        for name, run in runs.items():
            start = time.perf_counter()
            run(batches[name])
            run(batches[name])
            first[name] = time.perf_counter() - start
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(20):
                    run(batches[name])
                best[name] = max(best[name], 20 * len(x) / (time.perf_counter() - start))
    print(f"{args.model}{' plain' if args.plain else ''}, batch {len(x)}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats} x 20 forward passes")
    print(f"{'path':<10} {'first 2 calls s':>15} {'images/s':>9}  note")
    for name, run in runs.items():
        print(f"{name:<10} {first[name]:>15.2f} {best[name]:>9.0f}  {run.note}")


if __name__ == "__main__":
    main()
