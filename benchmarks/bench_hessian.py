"""Cost of one Hessian-vector product relative to a bare forward + backward of the same batch (goal: <= 2.5x);
with --peers, Hutchinson's trace and the SLQ density at equal products against hessian-eigenthings and PyHessian.

    python benchmarks/bench_hessian.py --model resnet20 --batch-size 64 --repeats 5
    python benchmarks/bench_hessian.py --peers --batch-size 32 --probes 8 --runs 4 --steps 5 --repeats 3
    python benchmarks/bench_hessian.py --peers --batch-size 32 --probes 8 --runs 4 --steps 5 --repeats 3 \
        --threads 1 --cpu-time

Both run in eval mode (as `netprobe hessian` does) on the same batch; the HVP is the double backward of
`netprobe.analysis.hessian.hessian.hvp` (with --keep-graph: the product reusing the gradient graph, as
`netprobe hessian --keep-graph`). Runs alternate, and the medians are compared.

--peers (the peers pip-installed; both import without torchvision): one batch of --batch-size samples, the same
model, in one process. Trace: --probes Rademacher probes; netprobe's z'Hz by Taylor mode (as `netprobe hessian`;
"kept": the primal values kept across probes, as --keep-graph), netprobe "products" (z'(Hz) by double backward,
as before Taylor mode and as with --per-block), netprobe batched (products, `--batch-probes` = --probes: one
forward and backward, one batched second backward),
hessian-eigenthings' `hutchinson` on its `HessianOperator` (a forward and backward per product) and PyHessian's
`trace` with `data=` (its graph built once and kept; tol -inf, so all probes run, see `_every_probe`;
construction timed). Density:
--runs Lanczos runs of --steps products each (netprobe batched: the runs in lockstep, --runs vectors per product),
and `spectral_density` (PyHessian 0.1's `density` calls `torch.eig`, removed in torch 2). "netprobe kept"
is `netprobe hessian --keep-graph` (the graph built once, as PyHessian does). Each method's median over --repeats
alternating rounds; ratios are the fastest peer's time over each netprobe method's. On a shared machine use
--cpu-time --threads 1: the process's CPU time does not count the time other processes held the cores.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

import netprobe
from harness import forward_backward, model_parser
from netprobe.analysis.hessian.hessian import hvp_operator, parameters


def _every_probe(values: list, probes: int) -> list:
    """PyHessian's trace stops when |mean change| / (mean + 1e-6) < tol, without abs in the denominator: with a
    negative running mean (at initialisation) any tol >= 0 stops it after two probes; tol = -inf never does."""
    assert len(values) == probes, f"PyHessian ran {len(values)} of {probes} probes"
    return values


def peer_methods(model, x, y, probes: int, runs: int, steps: int) -> dict:
    """{task: {method: a function running it}} for the trace and the density tasks."""
    from hessian_eigenthings import HessianOperator, hutchinson, spectral_density, supervised_loss
    from pyhessian import hessian

    from netprobe.analysis.hessian.density import slq
    from netprobe.analysis.hessian.hessian import trace

    batches, loss = [(x, y)], F.cross_entropy
    operator = lambda: HessianOperator(model, batches, supervised_loss(loss))  # noqa: E731
    pyhessian = lambda: hessian(model, loss, data=(x, y), cuda=False)  # noqa: E731
    return {
        "trace": {"netprobe": lambda: trace(model, loss, batches, probes=probes),
                  "netprobe kept": lambda: trace(model, loss, batches, probes=probes, keep_graph=True),
                  "netprobe products": lambda: trace(model, loss, batches, probes=probes, taylor=False),
                  "netprobe products kept": lambda: trace(model, loss, batches, probes=probes, keep_graph=True,
                                                          taylor=False),
                  "netprobe batched": lambda: trace(model, loss, batches, probes=probes, batch=probes,
                                                    taylor=False),
                  "hessian-eigenthings": lambda: hutchinson(operator(), num_samples=probes, seed=0),
                  "PyHessian": lambda: _every_probe(pyhessian().trace(maxIter=probes, tol=-math.inf), probes)},
        "density": {"netprobe": lambda: slq(model, loss, batches, steps=steps, runs=runs),
                    "netprobe batched": lambda: slq(model, loss, batches, steps=steps, runs=runs, batch=runs),
                    "netprobe kept": lambda: slq(model, loss, batches, steps=steps, runs=runs, keep_graph=True),
                    "hessian-eigenthings": lambda: spectral_density(operator(), num_runs=runs, lanczos_steps=steps,
                                                                    seed=0)}}  # PyHessian 0.1's density calls
    # torch.eig, removed from torch since 2.0: it cannot run here


def peers(args) -> None:
    """Time each method of each task, alternating, and print medians and ratios."""
    torch.manual_seed(0)
    model = netprobe.load(args.model, **({"plain": True} if args.plain else {})).eval()
    spec = netprobe.model_spec(args.model)
    x = torch.randn(args.batch_size, *spec.input_size)
    y = torch.randint(0, spec.num_classes or 10, (args.batch_size,))
    tasks = peer_methods(model, x, y, args.probes, args.runs, args.steps)
    clock = time.process_time if args.cpu_time else time.perf_counter
    times = {task: {name: [] for name in methods} for task, methods in tasks.items()}
    for r in range(args.repeats):
        for task, methods in tasks.items():
            names = list(methods) if r % 2 == 0 else list(reversed(methods))
            for name in names:
                start = clock()
                methods[name]()
                times[task][name].append(clock() - start)
                model.zero_grad(set_to_none=True)  # PyHessian leaves .grad graphs behind
    print(f"{args.model} batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{'CPU' if args.cpu_time else 'wall'} time, median of {args.repeats}: "
          f"trace {args.probes} probes, density {args.runs} runs x {args.steps} steps")
    for task, by_name in times.items():
        median = {name: statistics.median(t) for name, t in by_name.items()}
        peer = min(t for n, t in median.items() if not n.startswith("netprobe"))
        cells = ", ".join(f"{name} {t:.2f} s" for name, t in median.items())
        ratios = ", ".join(f"{name} {peer / t:.2f}x" for name, t in median.items() if name.startswith("netprobe"))
        print(f"{task}: {cells}; fastest peer's time over each netprobe method's: {ratios}")


def main() -> None:
    parser = model_parser(__doc__, model="resnet20", batch_size=64, repeats=5)
    parser.add_argument("--keep-graph", action="store_true", help="Reuse the gradient graph (hessian --keep-graph).")
    parser.add_argument("--peers", action="store_true", help="Trace and density against the peers.")
    parser.add_argument("--probes", type=int, default=8, help="--peers: trace probes.")
    parser.add_argument("--runs", type=int, default=4, help="--peers: Lanczos runs.")
    parser.add_argument("--steps", type=int, default=5, help="--peers: products per Lanczos run.")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's).")
    parser.add_argument("--cpu-time", action="store_true",
                        help="--peers: time by the process's CPU time, not the wall clock (a shared, loaded machine; "
                             "use with --threads 1, where CPU time is the work done).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peers:
        peers(args)
        return

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
