"""Loss surfaces: 1-D and 2-D slices along filter-normalised random directions (Li et al., NeurIPS 2018),
their roughness figures, and the plain-vs-residual study that trains, re-estimates BatchNorm and slices.
"""
