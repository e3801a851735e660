"""Lesion studies: delete residual blocks of a trained net and measure what is lost (Veit et al., "Residual
Networks Behave Like Ensembles of Relatively Shallow Networks", NeurIPS 2016).

`blocks` finds the deletable blocks of a model and swaps them in place for their shortcut path (a residual
block keeps its identity or option-A/projection shortcut; a plain twin's block becomes the identity where
its input and output shapes match) and back. `lesion` measures test accuracy and loss after deleting each
block (one row per block), after deleting random sets of k blocks (Veit et al.'s Fig. 4), and per block the
residual ratio ||F(x)|| / ||shortcut(x)|| and the output variance (how close each block is to the identity,
and how the residual stream grows when no BatchNorm normalises it). `study` builds a zoo model and its
plain twin from checkpoints of `netprobe train` (or trains them briefly) and runs all of it.
"""
