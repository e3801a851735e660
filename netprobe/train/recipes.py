"""Default training recipe per model family, each from the paper that trained the family.

LeNet-5 keeps the paper's initialisation (uniform +-2.4/fan_in), which shrinks the signal ~10x per layer
(output std 5e-5 on normalised digits): plain SGD then sees vanishing gradients and stays at ln 10. The
paper trained it with per-parameter step sizes (stochastic diagonal Levenberg-Marquardt, its appendix C);
Adam (Kingma and Ba 2015) is the per-parameter method used here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptimizerSettings:
    """Optimizer settings; the step schedule (/10 at 50% and 75% of the steps) is shared by all."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    source: str


HE = OptimizerSettings("sgd", 0.1, 0.9, 1e-4, "He et al. 2016, Sec. 4.2 (CIFAR ResNets)")
RECIPES = {
    "lenet": OptimizerSettings("adam", 3e-3, 0.9, 0.0, "Adam (Kingma and Ba 2015) for LeCun et al. 1998's per-parameter steps"),
    "alexnet": OptimizerSettings("sgd", 0.01, 0.9, 5e-4, "Krizhevsky et al. 2012, Sec. 5"),
    "vgg": OptimizerSettings("sgd", 0.01, 0.9, 5e-4, "Simonyan and Zisserman 2015, Sec. 3.1"),
    "densenet": OptimizerSettings("sgd", 0.1, 0.9, 1e-4, "Huang et al. 2017, Sec. 4.2"),
}


def recipe(family: str) -> OptimizerSettings:
    """The default recipe of a model family (He et al.'s SGD for the residual and remaining families)."""
    return RECIPES.get(family, HE)
