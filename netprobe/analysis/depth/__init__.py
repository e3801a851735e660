"""The degradation problem measured: plain and residual CIFAR ResNets of several depths trained alike.

He et al. 2016 (Fig. 1, Fig. 6): a 56-layer plain net ends at a higher *training* error than a 20-layer
one, while with shortcuts the deeper net is at least as good. `run_study` trains every (depth, variant)
pair from one seed under `netprobe train`'s recipe and returns the curves (one row per logged step) and
the final row of each pair as DataFrames; every pair is an ordinary train checkpoint.
"""

from netprobe.analysis.depth.pair import STUDY_ORDER, Recipe, train_pair
from netprobe.analysis.depth.study import DEPTHS, Study, check_study, collect, describe, rank_share, run_study

__all__ = ["DEPTHS", "STUDY_ORDER", "Recipe", "Study", "check_study", "collect", "describe", "rank_share",
           "run_study", "train_pair"]
