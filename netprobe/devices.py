"""Where the compute analyses run: 'cpu', 'cuda' (this rank's GPU under torchrun) or 'auto' (cuda when available).

Data moves to the device once per run (`to_device`: the embedded and CIFAR sets fit in a GPU's memory); on the
CPU nothing is copied, so CPU results stay bit-identical to runs made before devices existed. Checkpoints are
always read with `map_location="cpu"`, so one saved on a GPU loads on a CPU-only machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

import torch

from netprobe.errors import NetprobeError

DEVICES = ("cpu", "cuda", "auto")


def resolve(device: str | torch.device = "cpu") -> torch.device:
    """The torch device for `device` ('cpu', 'cuda', 'auto' or a torch.device); under torchrun cuda is the GPU
    LOCAL_RANK names, made current."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise NetprobeError("device 'cuda' asked for, but this torch sees no CUDA device (a CPU-only build, or "
                                "no GPU visible): use device 'cpu' or 'auto'")
        index = int(os.environ.get("LOCAL_RANK", "0"))
        if index >= torch.cuda.device_count():
            raise NetprobeError(f"device 'cuda': local rank {index} has no GPU of its own ({torch.cuda.device_count()}"
                                " visible): start at most that many ranks per machine")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if device != "cpu":
        raise NetprobeError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")
    return torch.device("cpu")


def to_device(dataset, device: torch.device):
    """`dataset` (a `netprobe.data.Dataset`) with both splits on `device`; the same object on the CPU."""
    if device.type == "cpu":
        return dataset
    move = [replace(split, x=split.x.to(device), y=split.y.to(device)) for split in (dataset.train, dataset.test)]
    return replace(dataset, train=move[0], test=move[1])


def autocast(device: torch.device, amp: bool):
    """bf16 autocast for the block when `amp` on CUDA; nothing otherwise (`amp` on the CPU is refused)."""
    if not amp:
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise NetprobeError("amp (bf16 autocast) is for device 'cuda' only: on the CPU it would only change the "
                            "numbers")
    return torch.autocast("cuda", dtype=torch.bfloat16)


def convolution_layout(t: torch.Tensor) -> torch.Tensor:
    """`t` channels-last if it is a 4-D CPU tensor (oneDNN's fastest convolutions: 0.56x the time of NCHW for
    resnet20's 16-channel layers), as it is otherwise."""
    if t.dim() == 4 and t.device.type == "cpu":
        return t.contiguous(memory_format=torch.channels_last)
    return t
