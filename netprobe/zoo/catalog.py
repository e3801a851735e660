"""The zoo as a table, without importing torch or building a model: what `netprobe list` shows.

The entries are data copied from the registry; tests/zoo/test_catalog.py checks each one against its registered spec,
a parameter count of the model built on the meta device and the published figures.
"""

from __future__ import annotations

from typing import NamedTuple

from netprobe.zoo.registry import select


class Entry(NamedTuple):
    """One registered model as `netprobe list` shows it."""

    family: str
    input_size: tuple[int, int, int]  # (C, H, W) at the default input
    num_classes: int | None  # None for single blocks
    params: int  # at the default options, counted on the meta device
    plain: bool  # has a plain (no-shortcut) twin
    description: str


INDEX: dict[str, Entry] = {
    "alexnet": Entry("alexnet", (3, 224, 224), 1000, 61_100_840, False,
                  "AlexNet as torchvision lays it out (single tower, 64-192-384-256-256)"),
    "alexnet_original": Entry("alexnet", (3, 227, 227), 1000, 62_378_344, False,
                  "AlexNet as in the 2012 paper (96-256-384-384-256, LRN, towers merged)"),
    "densenet121": Entry("densenet", (3, 224, 224), 1000, 7_978_856, False,
                  "DenseNet-BC-121, growth 32, blocks (6, 12, 24, 16) (Huang et al. 2017)"),
    "densenet161": Entry("densenet", (3, 224, 224), 1000, 28_681_000, False,
                  "DenseNet-BC-161, growth 48, blocks (6, 12, 36, 24) (Huang et al. 2017)"),
    "densenet169": Entry("densenet", (3, 224, 224), 1000, 14_149_480, False,
                  "DenseNet-BC-169, growth 32, blocks (6, 12, 32, 32) (Huang et al. 2017)"),
    "densenet201": Entry("densenet", (3, 224, 224), 1000, 20_013_928, False,
                  "DenseNet-BC-201, growth 32, blocks (6, 12, 48, 32) (Huang et al. 2017)"),
    "googlenet": Entry("googlenet", (3, 224, 224), 1000, 6_624_904, False,
                  "GoogLeNet / Inception v1 (Szegedy et al. 2014), torchvision layout or layout='paper'"),
    "inception_block": Entry("googlenet", (192, 28, 28), None, 163_696, False,
                  "one Inception (3a) module, 28x28x192 -> 28x28x256, bias convs (Szegedy et al. 2014)"),
    "lenet5": Entry("lenet", (1, 32, 32), 10, 61_706, False,
                  "LeNet-5 (LeCun et al. 1998): tanh, average pooling, 61,706 parameters"),
    "resnet18": Entry("resnet", (3, 224, 224), 1000, 11_689_512, True,
                  "ResNet-18, basic blocks [2, 2, 2, 2] (He et al. 2016)"),
    "resnet20": Entry("cifar_resnet", (3, 32, 32), 10, 269_722, True,
                  "ResNet-20 for CIFAR-10, n=3, option-A shortcuts (He et al. 2016)"),
    "resnet32": Entry("cifar_resnet", (3, 32, 32), 10, 464_154, True,
                  "ResNet-32 for CIFAR-10, n=5, option-A shortcuts (He et al. 2016)"),
    "resnet34": Entry("resnet", (3, 224, 224), 1000, 21_797_672, True,
                  "ResNet-34, basic blocks [3, 4, 6, 3] (He et al. 2016)"),
    "resnet44": Entry("cifar_resnet", (3, 32, 32), 10, 658_586, True,
                  "ResNet-44 for CIFAR-10, n=7, option-A shortcuts (He et al. 2016)"),
    "resnet50": Entry("resnet", (3, 224, 224), 1000, 25_557_032, True,
                  "ResNet-50, bottlenecks [3, 4, 6, 3] (He et al. 2016)"),
    "resnet56": Entry("cifar_resnet", (3, 32, 32), 10, 853_018, True,
                  "ResNet-56 for CIFAR-10, n=9, option-A shortcuts (He et al. 2016)"),
    "resnet101": Entry("resnet", (3, 224, 224), 1000, 44_549_160, True,
                  "ResNet-101, bottlenecks [3, 4, 23, 3] (He et al. 2016)"),
    "resnet110": Entry("cifar_resnet", (3, 32, 32), 10, 1_727_962, True,
                  "ResNet-110 for CIFAR-10, n=18, option-A shortcuts (He et al. 2016)"),
    "resnet152": Entry("resnet", (3, 224, 224), 1000, 60_192_808, True,
                  "ResNet-152, bottlenecks [3, 8, 36, 3] (He et al. 2016)"),
    "resnet1202": Entry("cifar_resnet", (3, 32, 32), 10, 19_421_274, True,
                  "ResNet-1202 for CIFAR-10, n=200, option-A shortcuts (He et al. 2016)"),
    "unet": Entry("unet", (1, 572, 572), 2, 31_030_658, False,
                  "U-Net (Ronneberger et al. 2015): 572x572x1 > 388x388x2, valid convs; padding='same'"),
    "vgg11": Entry("vgg", (3, 224, 224), 1000, 132_863_336, False,
                  "VGG-11 (configuration A), as in torchvision"),
    "vgg11_bn": Entry("vgg", (3, 224, 224), 1000, 132_868_840, False,
                  "VGG-11 (configuration A) with batch norm, as in torchvision"),
    "vgg13": Entry("vgg", (3, 224, 224), 1000, 133_047_848, False,
                  "VGG-13 (configuration B), as in torchvision"),
    "vgg13_bn": Entry("vgg", (3, 224, 224), 1000, 133_053_736, False,
                  "VGG-13 (configuration B) with batch norm, as in torchvision"),
    "vgg16": Entry("vgg", (3, 224, 224), 1000, 138_357_544, False,
                  "VGG-16 (configuration D), as in torchvision"),
    "vgg16_bn": Entry("vgg", (3, 224, 224), 1000, 138_365_992, False,
                  "VGG-16 (configuration D) with batch norm, as in torchvision"),
    "vgg19": Entry("vgg", (3, 224, 224), 1000, 143_667_240, False,
                  "VGG-19 (configuration E), as in torchvision"),
    "vgg19_bn": Entry("vgg", (3, 224, 224), 1000, 143_678_248, False,
                  "VGG-19 (configuration E) with batch norm, as in torchvision"),
}

COLUMNS = ("name", "family", "input", "classes", "params", "plain", "description")


def families() -> list[str]:
    """Names of the families in the index, sorted."""
    return sorted({e.family for e in INDEX.values()})


def catalog(pattern: str | None = None, family: str | None = None) -> list[dict]:
    """Rows (dicts keyed by COLUMNS) of the models matching a glob `pattern` and `family`, in natural order."""
    names = select({n: e.family for n, e in INDEX.items()}, pattern, family)
    return [{"name": n, "family": INDEX[n].family, "input": "x".join(str(d) for d in INDEX[n].input_size),
             "classes": INDEX[n].num_classes, "params": INDEX[n].params, "plain": INDEX[n].plain,
             "description": INDEX[n].description} for n in names]
