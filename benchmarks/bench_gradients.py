"""Cost of one gradient profile relative to a bare forward + backward of the same batch (goal: <= 1.2x).

    python benchmarks/bench_gradients.py --model resnet56 --batch-size 32 --repeats 7

Both run in train mode on the same batch; the bare pass is `loss.backward()` with the gradients cleared
after each run. Runs alternate, and the medians are compared.
"""

from __future__ import annotations

import statistics
import time

import torch

import netprobe
from harness import forward_backward, model_parser
from netprobe.analysis.gradients.profile import gradient_profile


def main() -> None:
    parser = model_parser(__doc__, model="resnet56", batch_size=32, repeats=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = netprobe.load(args.model, **({"plain": True} if args.plain else {})).train()
    spec = netprobe.model_spec(args.model)
    x = torch.randn(args.batch_size, *spec.input_size)
    y = torch.randint(0, spec.num_classes or 10, (args.batch_size,))
    forward_backward(model, x, y)  # warm-up
    gradient_profile(model, [(x, y)])
    times = {"bare": [], "profile": []}
    for _ in range(args.repeats):
        for name, run in (("bare", lambda: forward_backward(model, x, y)),
                          ("profile", lambda: gradient_profile(model, [(x, y)]))):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base, profile = statistics.median(times["bare"]), statistics.median(times["profile"])
    print(f"{args.model}{' plain' if args.plain else ''} batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}: forward+backward {base * 1e3:.1f} ms, profile {profile * 1e3:.1f} ms, "
          f"ratio {profile / base:.2f}x")


if __name__ == "__main__":
    main()
