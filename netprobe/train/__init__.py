"""Training: SGD with momentum and weight decay (He et al. 2016), resumable checkpoints, BN recalibration."""

from netprobe.train.batchnorm import recalibrate_bn
from netprobe.train.checkpoint import load_checkpoint, load_weights, save_checkpoint
from netprobe.train.loop import METRICS, evaluate, fit, learning_rate, train_epoch, train_step

__all__ = ["METRICS", "evaluate", "fit", "learning_rate", "load_checkpoint", "load_weights", "recalibrate_bn",
           "save_checkpoint", "train_epoch", "train_step"]
