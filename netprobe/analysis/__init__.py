"""Analyses: plain functions from a model (and inputs) to DataFrames or small dataclasses.

- `counting`: shapes, parameters, MACs/FLOPs and activation memory from one meta-device trace.
- `fields`: receptive fields (analytic, per aten operator) and their gradient check.
- `graph`: the architecture as a dataflow graph of modules, from the same trace.
- `memory`: what one training step costs: backward FLOPs, saved activations, the live-bytes timeline.
- `evaluation`: the fast evaluation path (BatchNorm folded, convolutions fused) the studies share.
- `twins` (a module): the plain-vs-residual pipeline of the studies below.
- `gradients`: per-layer gradient norms, responses and shattered gradients, plain vs residual.
- `surfaces`: loss-surface slices along filter-normalised directions, and their roughness.
- `lesion`: blocks deleted one at a time and in sets (Veit et al. 2016).
- `hessian`: top eigenvalues, trace and density of the loss Hessian (and GGN, Fisher).
- `depth`: the degradation study, plain and residual CIFAR ResNets of several depths trained alike.
"""
