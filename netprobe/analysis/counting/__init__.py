"""Counting: per-layer shapes, parameters, MACs, FLOPs and activation bytes without real compute.

One forward pass runs on the meta device under a `TorchDispatchMode` (`trace`); `flops` holds one formula
per aten operator (the convention of torchvision's published GFLOPS, which are GMACs, and of
`torch.utils.flop_counter`); `summary` folds the operators into torchinfo-style rows; `design` builds the
textbook comparisons (Szegedy et al. 2015's 1x1 bottleneck, Simonyan & Zisserman 2015's stacked 3x3s,
He et al. 2016's basic vs bottleneck blocks) and counts them with the same engine.
"""
