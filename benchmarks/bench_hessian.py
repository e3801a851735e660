"""Cost of one Hessian-vector product relative to a bare forward + backward of the same batch (goal: <= 2.5x).

    python benchmarks/bench_hessian.py --model resnet20 --batch-size 64 --repeats 5

Both run in eval mode (as `netprobe hessian` does) on the same batch; the HVP is the double backward of
`netprobe.analysis.hessian.hessian.hvp` (with --keep-graph: the product reusing the gradient graph, as
`netprobe hessian --keep-graph`). Runs alternate, and the medians are compared.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

import netprobe
from harness import forward_backward, model_parser
from netprobe.analysis.hessian.hessian import hvp_operator, parameters


def main() -> None:
    parser = model_parser(__doc__, model="resnet20", batch_size=64, repeats=5)
    parser.add_argument("--keep-graph", action="store_true", help="Reuse the gradient graph (hessian --keep-graph).")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = netprobe.load(args.model, **({"plain": True} if args.plain else {})).eval()
    spec = netprobe.model_spec(args.model)
    x = torch.randn(args.batch_size, *spec.input_size)
    y = torch.randint(0, spec.num_classes or 10, (args.batch_size,))
    v = torch.randn(sum(p.numel() for p in parameters(model)))
    operator = hvp_operator(model, F.cross_entropy, [(x, y)], keep_graph=args.keep_graph)
    product = lambda: operator(v)  # noqa: E731
    forward_backward(model, x, y)  # warm-up
    product()
    times = {"bare": [], "hvp": []}
    for _ in range(args.repeats):
        for name, run in (("bare", lambda: forward_backward(model, x, y)), ("hvp", product)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base, cost = statistics.median(times["bare"]), statistics.median(times["hvp"])
    print(f"{args.model}{' plain' if args.plain else ''} batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}: forward+backward {base * 1e3:.1f} ms, HVP{' (kept graph)' * args.keep_graph} "
          f"{cost * 1e3:.1f} ms, "
          f"ratio {cost / base:.2f}x")


if __name__ == "__main__":
    main()
