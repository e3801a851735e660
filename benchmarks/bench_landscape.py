"""Speed of a 2-D loss-surface slice: netprobe against the bare forward pass and the `loss-landscapes` package.

    python benchmarks/bench_landscape.py --model resnet20 --steps 7 --samples 256 --repeats 3

On one model, data set and grid (steps x steps points, each evaluated on the same `--samples` images):
- bare: the model's forward passes alone, in eval and inference mode, over the same batches as many times
  as there are grid points, in the default (NCHW) layout and channels-last, the layout netprobe evaluates
  in (netprobe's goal: >= 1.2x the channels-last images/s);
- netprobe eager / folded / fused / compiled: `netprobe.analysis.surfaces.landscape.surface` with
  filter-normalised directions, through `netprobe.analysis.evaluation.FastEval` with BatchNorm unfolded
  (the model as it is, channels-last), folded, folded and fused into oneDNN primitives (netprobe's default),
  and folded + `torch.compile` (each run compiles afresh, the compilation is inside its time; inductor's
  on-disk cache is warm after the warm-up run);
- convs alone: the model's convolutions and nothing else, each on its own input activations from the first
  batch, BatchNorm folded and weights prepacked, as many times as the grid runs them: the time no float32
  forward through oneDNN can beat here;
- loss-landscapes: `loss_landscapes.random_plane(..., normalization='filter')` with its `Loss` metric, as its
  README calls it (model in eval mode; its metric runs all samples in one batch, with autograd on), if the
  package is installed (`pip install loss-landscapes`); otherwise the line says it is unavailable.
Runs alternate; the best of `--repeats` is kept for each, as the machine may be shared. Images/s counts
grid points x samples.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

import netprobe
from harness import model_parser
from netprobe.analysis.evaluation import FastEval
from netprobe.analysis.surfaces.directions import random_directions
from netprobe.analysis.surfaces import landscape
from netprobe.analysis.surfaces.landscape import axis, surface
from netprobe.data import load_data


def bare(model, batches, points: int) -> None:
    """`points` evaluations of the unperturbed model: forward passes and the loss, nothing else."""
    with torch.inference_mode():
        for _ in range(points):
            for xb, yb in batches:
                F.cross_entropy(model(xb), yb, reduction="sum").item()


def conv_inputs(model, batch):
    """(fused convolution, its input) for every convolution of `model`'s fused eval forward on `batch`."""
    evaluator = FastEval(model, compile=False)
    seen = []
    with torch.inference_mode():
        evaluator(evaluator.layout(batch))
        hooks = [conv.register_forward_pre_hook(lambda conv, args: seen.append((conv, args[0].clone())))
                 for conv in evaluator._fused]
        evaluator(evaluator.layout(batch))
    for hook in hooks:
        hook.remove()
    return seen


def convs_alone(seen, repeats: int) -> None:
    """The model's convolutions by themselves, `repeats` times: no activations, sums, pooling or loss."""
    with torch.inference_mode():
        for _ in range(repeats):
            for conv, x in seen:
                torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv._folded[0].bias, *conv._args, "none",
                                                        [], "")


def _with(options, model, x, y, directions, xs, batch_size):
    """The surface with FastEval run with `options` (fold=False: the eager model, channels-last inputs)."""
    original = landscape.FastEval
    landscape.FastEval = lambda m, **given: original(m, **{**given, **options})
    try:
        return surface(model, x, y, directions, xs, xs, batch_size=batch_size, compile=False)
    finally:
        landscape.FastEval = original


def main() -> None:
    parser = model_parser(__doc__, model="resnet20", batch_size=64, repeats=3)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()

    spec = netprobe.model_spec(args.model)
    data = load_data("synthetic", spec.input_size, seed=0)
    x, y = data.train.x[:args.samples].contiguous(), data.train.y[:args.samples]
    torch.manual_seed(0)
    model = netprobe.load(args.model, **({"plain": True} if args.plain else {})).eval()
    with torch.no_grad():
        # Non-zero BatchNorm shifts, as after training: loss-landscapes' filter normalisation divides by the
        # norm of each bias and raises ZeroDivisionError on the all-zero shifts of a fresh BatchNorm.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.uniform_(-0.1, 0.1)
    xs = axis(-1.0, 1.0, args.steps)
    points = args.steps ** 2
    batches = list(zip(x.split(args.batch_size), y.split(args.batch_size)))
    # Biases and BatchNorm parameters move too, as in loss-landscapes, so both perturb the same tensors.
    directions = random_directions(model, 2, seed=0, include_bn=True)

    seen = conv_inputs(model, batches[0][0])  # every batch of the grid runs the first batch's activations
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_batches = [(xb.contiguous(memory_format=torch.channels_last), yb) for xb, yb in batches]
    runs = {
        "bare NCHW": lambda: bare(model, batches, points),
        "bare chan-last": lambda: bare(cl_model, cl_batches, points),
        "netprobe eager": lambda: _with({"fold": False, "compile": False}, model, x, y, directions, xs,
                                        args.batch_size),
        "netprobe folded": lambda: _with({"fuse": False, "compile": False}, model, x, y, directions, xs,
                                         args.batch_size),
        "netprobe fused": lambda: surface(model, x, y, directions, xs, xs, batch_size=args.batch_size,
                                          compile=False),
        "convs alone": lambda: convs_alone(seen, points * len(batches)),
        "netprobe compiled": lambda: surface(model, x, y, directions, xs, xs, batch_size=args.batch_size,
                                             compile=True),
    }
    try:
        import loss_landscapes
        import loss_landscapes.metrics

        metric = loss_landscapes.metrics.Loss(F.cross_entropy, x, y)
        ll_model = copy.deepcopy(model)  # it moves the model's own weights and leaves them at the grid's end
        runs["loss-landscapes"] = lambda: loss_landscapes.random_plane(
            ll_model, metric, distance=1.0, steps=args.steps, normalization="filter")
        missing = None
    except ImportError as exc:
        missing = f"loss-landscapes: unavailable ({exc}); pip install loss-landscapes to compare"
    for run in runs.values():  # warm-up: allocator, oneDNN primitives
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)

    images = points * args.samples
    print(f"{args.model}{' plain' if args.plain else ''}, {args.steps}x{args.steps} grid, {args.samples} samples "
          f"{tuple(spec.input_size)}, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats}")
    print(f"{'tool':<18} {'seconds':>8} {'images/s':>9}  note")
    rate = {name: images / t for name, t in best.items()}
    for name, seconds in best.items():
        note = ""
        if name == "convs alone" and "loss-landscapes" in best:
            note = f"the convolutions alone: {best['loss-landscapes'] / seconds:.2f}x loss-landscapes"
        if name.startswith("netprobe"):
            note = f"{rate[name] / rate['bare chan-last']:.2f}x bare channels-last (goal >= 1.2x)"
            if "loss-landscapes" in best:
                note += f", {best['loss-landscapes'] / seconds:.2f}x loss-landscapes (goal >= 2.5x)"
        print(f"{name:<18} {seconds:>8.2f} {rate[name]:>9.0f}  {note}")
    if missing:
        print(missing)


if __name__ == "__main__":
    main()
