"""Fast eval-mode forwards: BatchNorm folding, oneDNN fusion, compilation (`FastEval`), and `evaluate`."""

from netprobe.analysis.evaluation.fast import FastEval, evaluate_fast
from netprobe.analysis.evaluation.folding import FoldedConv, fold_batchnorm

__all__ = ["FastEval", "FoldedConv", "evaluate", "fold_batchnorm"]
