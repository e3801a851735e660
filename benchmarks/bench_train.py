"""Training speed: images/s of netprobe's `train_epoch` against a bare forward+backward+step loop (goal: >= 0.9x).

    python benchmarks/bench_train.py --models resnet20,resnet56 --batch-size 128 --batches 3 --repeats 3

Both train the same model with the same SGD optimizer (momentum 0.9, weight decay 1e-4) on the same
in-memory tensors. The bare loop steps through ready-made contiguous (NCHW) batches; `train_epoch` also gathers
each batch from a shuffled order, sets the scheduled learning rate and counts loss and hits, and runs
channels-last (weights and batches), which is what is measured. Runs alternate, one epoch of --batches steps each, and the medians are compared.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import netprobe
from netprobe.train import train_epoch


def bare(model, optimizer, batches) -> None:
    """The textbook loop: forward, loss, backward, step."""
    model.train()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def measure(name: str, batch_size: int, count: int, repeats: int, options: dict) -> dict:
    """Median images/s of both loops for one model built with `options`."""
    torch.manual_seed(0)
    model = netprobe.load(name, **options)
    c, h, w = netprobe.model_spec(name).input_size
    n = batch_size * count
    x, y = torch.randn(n, c, h, w), torch.randint(0, 10, (n,))
    order = torch.randperm(n)
    batches = [(x[order[i:i + batch_size]].contiguous(), y[order[i:i + batch_size]]) for i in range(0, n, batch_size)]
    # Each loop trains its own copy: train_epoch stores the weights channels-last, the bare loop keeps NCHW.
    bare_model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    bare_optimizer = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def netprobe_epoch():
        # total_steps large: the learning rate stays at its initial value, as in the bare loop.
        train_epoch(model, optimizer, x, y, batch_size=batch_size, order=order, lr=0.01, first_step=0,
                    total_steps=10**9)

    runs = {"bare": lambda: bare(bare_model, bare_optimizer, batches), "netprobe": netprobe_epoch}
    for run in runs.values():  # warm-up: oneDNN primitives, allocator
        run()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    return {k: n / statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=3, help="Steps per timed epoch.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, help="CIFAR ResNet width (the depth study's --width).")
    args = parser.parse_args()
    options = {} if args.width is None else {"width": args.width}

    print(f"batch {args.batch_size}, {args.batches} steps per run, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads{f', width {args.width}' if options else ''}")
    print("| model | bare loop img/s | netprobe train_epoch img/s | ratio |")
    print("|---|---:|---:|---:|")
    for name in args.models.split(","):
        rates = measure(name, args.batch_size, args.batches, args.repeats, options)
        print(f"| {name} | {rates['bare']:.1f} | {rates['netprobe']:.1f} | {rates['netprobe'] / rates['bare']:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
