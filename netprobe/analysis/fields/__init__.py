"""Receptive fields: per layer and spatial axis, the field size, jump and centre (Araujo et al., Distill 2019).

`graph` propagates input windows through the traced aten operators, one rule per operator, through branches,
skips and concatenations; `receptive_field` attaches the result to the summary's rows; `check` verifies it by
input gradients and measures the effective receptive field (Luo et al., NeurIPS 2016).
"""
