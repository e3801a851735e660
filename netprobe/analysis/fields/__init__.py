"""Receptive fields: per layer and spatial axis, the field size, jump and centre (Araujo et al., Distill 2019).

`rules` holds one rule per aten operator (registered by `@rule`, like the FLOP formulas of `counting.flops`):
where each output unit reads, window in -> window out; `rules_spatial` and `rules_shape` hold the windowed
and the layout operators. `graph.solve` runs the rules in trace order through branches, skips and
concatenations, and `propagate` computes the exact windows from them; `receptive_field` attaches the result
to the summary's rows; `check` verifies it by input gradients and measures the effective receptive field
(Luo et al., NeurIPS 2016).
"""
