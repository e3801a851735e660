"""What the benchmark scripts share: the bare forward+backward they compare against and their common options."""

from __future__ import annotations

import argparse

import torch.nn.functional as F


def forward_backward(model, x, y) -> None:
    """One forward and one backward pass, as a training step computes them."""
    F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)


def model_parser(doc: str, *, model: str, batch_size: int, repeats: int) -> argparse.ArgumentParser:
    """A parser with --model, --plain, --batch-size and --repeats at the given defaults."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default=model)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--repeats", type=int, default=repeats)
    return parser
