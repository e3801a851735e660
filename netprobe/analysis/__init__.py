"""Analyses: plain functions from a model (and inputs) to DataFrames or small dataclasses.

- `counting`: shapes, parameters, MACs/FLOPs and activation memory from one meta-device trace.
- `fields`: receptive fields (analytic, per aten operator) and their gradient check.
- `gradients`: per-layer gradient norms, responses and shattered gradients, plain vs residual.
- `surfaces`: loss-surface slices along filter-normalised directions, and their roughness.
"""
