"""torchinfo as an independent check: a real CPU forward of every zoo model, compared with netprobe row by row.

Where torchinfo is right the two agree exactly: per call of a module, its qualified name, type, output shape and
parameters, and the totals. Where it is not, the difference is asserted with its figures:
- containers that run no operator of their own (a Sequential, a root that only flattens) are torchinfo rows;
  netprobe folds them into their children, so the counts of such rows are written down per model;
- a module called again shows "(recursive)" in torchinfo and 0 parameters in netprobe (counted once, both);
  a ModuleList that forward iterates is never called, so torchinfo re-lists it on every return to it, each
  row "(recursive)" (U-Net: 13 rows for its 3 lists);
- Mult-Adds: torchinfo multiplies a layer's parameters by its output positions, so it adds each bias add and
  BatchNorm's affine parameters to the MACs, and over-counts a stride-2 ConvTranspose2d 4x (its MACs are the
  weight times the input positions); it sees only leaf modules, so functional ops (F.conv2d, F.relu, x + y,
  torch.cat) count nothing there, while netprobe counts them for the module that runs them.
"""

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from torch import nn

from netprobe.analysis.counting.summary import summary
from netprobe.zoo import list_models, model_spec

from helpers import meta_model

# Weights are left uninitialised (meta build, then to_empty): counts and shapes do not depend on values, and
# initialising VGG's 138M parameters would cost most of the test. Sides are the smallest netprobe's trace accepts
# (one pixel less reaches zero somewhere, or misses a fixed-size head), except where a single pixel would do:
# ImageNet ResNets take 33 so every stage has its own size (17, 9, 5, 3, 2); CIFAR nets keep their 32.
SIDE = {"alexnet": 63, "googlenet": 15, "unet": 188, "resnet18": 33, "resnet34": 33, "resnet50": 33,
        "resnet101": 33, "resnet152": 33, **{f"densenet{d}": 29 for d in (121, 161, 169, 201)},
        **{f"vgg{d}{bn}": 32 for d in (11, 13, 16, 19) for bn in ("", "_bn")}}

# torchinfo rows that netprobe folds away, by type: containers whose children do all the work.
_VGG = {"VGG": 1, "Sequential": 2}  # features and classifier; the root only flattens (a view)
_RESNET = {"ResNet": 1, "Sequential": 4 + 3}  # 4 stages, downsample shortcuts of layer2-4's first blocks
_BOTTLENECK = {"ResNet": 1, "Sequential": 4 + 4}  # and of layer1's first block (64 -> 256 channels)
FOLDED = {"alexnet": {"AlexNet": 1, "Sequential": 2}, "alexnet_original": {"AlexNet": 1, "Sequential": 2},
          "lenet5": {"LeNet5": 1, "Sequential": 2},
          "googlenet": {"GoogLeNet": 1, "Sequential": 9 * 3},  # 3 multi-layer branches per Inception block
          "inception_block": {"Sequential": 3},
          # 5 encoder and 4 decoder DoubleConvs; ModuleLists once per visit: 5 encoder, 4 upconv, 4 decoder
          "unet": {"DoubleConv": 5 + 4, "ModuleList": 5 + 4 + 4},
          "resnet18": _RESNET, "resnet34": _RESNET, "resnet50": _BOTTLENECK, "resnet101": _BOTTLENECK,
          "resnet152": _BOTTLENECK,
          **{f"resnet{d}": {"Sequential": 3} for d in (20, 32, 44, 56, 110, 1202)},  # option-A shortcuts
          **{f"densenet{d}": {"Sequential": 1, "Transition": 3} for d in (121, 161, 169, 201)},
          **{f"vgg{d}{bn}": _VGG for d in (11, 13, 16, 19) for bn in ("", "_bn")}}


def _size(name):
    c, h, w = model_spec(name).input_size
    side = SIDE.get(name)
    return (1, c, h, w) if side is None else (1, c, side, side)


def _qualname(info) -> str:
    parts = []
    while info is not None and info.depth > 0:
        parts.append(info.var_name)
        info = info.parent_info
    return ".".join(reversed(parts))


def _keyed(rows, name):
    """(qualified name, how many calls of it came before) -> row: a module called twice has two rows."""
    seen = Counter()
    keyed = {}
    for row in rows:
        keyed[name(row), seen[name(row)]] = row
        seen[name(row)] += 1
    return keyed


def _mult_adds(info) -> tuple[int, int]:
    """(torchinfo's Mult-Adds by its rule, the true MACs) of one leaf call, from its module and shapes."""
    m, out, inp = info.module, info.output_size, info.input_size
    bias = m.bias.numel() if getattr(m, "bias", None) is not None else 0
    if isinstance(m, nn.Conv2d):  # one weight-sized dot product per output position
        positions = out[0] * out[2] * out[3]
        return (m.weight.numel() + bias) * positions, m.weight.numel() * positions
    if isinstance(m, nn.ConvTranspose2d):  # each input pixel is scattered through the whole kernel
        return (m.weight.numel() + bias) * out[0] * out[2] * out[3], m.weight.numel() * inp[0] * inp[2] * inp[3]
    if isinstance(m, nn.Linear):
        return out[0] * (m.weight.numel() + bias), math.prod(out[:-1]) * m.weight.numel()
    if isinstance(m, nn.BatchNorm2d):
        return out[0] * 2 * m.num_features, 0
    return 0, 0


def _torchinfo(model, size):
    stats = torchinfo.summary(model, input_size=size, verbose=0, device="cpu")
    torchinfo.torchinfo.clear_cached_forward_pass()  # it keeps the last model of each class, weights and all
    return stats


@pytest.mark.parametrize("name", list_models())
def test_layers_agree_with_torchinfo(name):
    size = _size(name)
    model = meta_model(name)  # one build (ResNet-1202's takes seconds): traced on meta, then given storage
    ours = summary(model, size)
    stats = _torchinfo(model.to_empty(device="cpu").eval(), size)
    assert (ours.totals.params, ours.totals.trainable_params) == (stats.total_params, stats.trainable_params)

    theirs = _keyed(stats.summary_list, _qualname)
    rows = _keyed(ours.layers.to_dict(orient="records"), lambda r: r["name"])
    # Every netprobe row is one of torchinfo's, in the same order, with its type, output shape and parameters
    # (a container's are its own, torchinfo's "leftover"; a repeated call's are counted at the first).
    assert [k for k in theirs if k in rows] == list(rows)
    for key, row in rows.items():
        info = theirs[key]
        params = 0 if info.is_recursive else info.num_params if info.is_leaf_layer else info.leftover_params()
        assert (row["type"], row["output_shape"], row["params"]) == (info.class_name, tuple(info.output_size),
                                                                     params), key
        if info.is_leaf_layer:
            rule, macs = _mult_adds(info)
            assert (info.macs, row["macs"]) == (rule, macs), key
    folded = [info for key, info in theirs.items() if key not in rows]
    assert Counter(info.class_name for info in folded) == FOLDED[name]
    assert all(not info.is_leaf_layer and (info.is_recursive or info.leftover_params() == 0) for info in folded)
    # Totals: torchinfo sums its leaf rows only; netprobe's MACs are the leaves' true MACs (no functional
    # convolution or matrix product in the zoo).
    leaves = [_mult_adds(info) for info in stats.summary_list if info.is_leaf_layer]
    assert stats.total_mult_adds == sum(rule for rule, _ in leaves)
    assert ours.totals.macs == sum(macs for _, macs in leaves)


def test_unet_module_lists_are_relisted_as_recursive():
    model = meta_model("unet")
    ours = summary(model, (1, 1, 188, 188)).layers.set_index("name")
    stats = _torchinfo(model.to_empty(device="cpu").eval(), (1, 1, 188, 188))
    lists = [info for info in stats.summary_list if info.class_name == "ModuleList"]
    assert [_qualname(i) for i in lists] == ["encoder"] * 5 + ["upconvs", "decoder"] * 4
    assert all(i.is_recursive and i.output_size == [] for i in lists)  # even the first listing; never called
    # upconvs.0: 1024 -> 512 channels, 2x2 kernel, stride 2, 4x4 -> 8x8: MACs are weight x input positions.
    assert ours.loc["upconvs.0", "macs"] == 1024 * 512 * 2 * 2 * 4 * 4
    info = next(i for i in stats.summary_list if _qualname(i) == "upconvs.0")
    assert info.macs == (1024 * 512 * 2 * 2 + 512) * 8 * 8  # torchinfo: 4x the weight's MACs, plus biases


def test_functional_ops_count_in_netprobe_only():
    # CIFAR ResNet-20 at 32x32: a BasicBlock runs F.relu, the shortcut add and F.relu on its output (16x32x32
    # in layer1, 32x16x16 in layer2); the root runs F.relu (16x32x32) and the global average pool (64x8x8).
    model = meta_model("resnet20")
    ours = summary(model, (1, 3, 32, 32)).layers.set_index("name")
    assert ours.loc["layer1.0", "flops"] == 3 * 16 * 32 * 32
    assert ours.loc["layer2.1", "flops"] == 3 * 32 * 16 * 16
    assert ours.loc["", "flops"] == 16 * 32 * 32 + 64 * 8 * 8
    # torchinfo's rows for the same modules show nothing of their own ("--" under Param # and Mult-Adds).
    stats = _torchinfo(model.to_empty(device="cpu").eval(), (1, 3, 32, 32))
    shown = {_qualname(i): (i.num_params_to_str(False), i.macs_to_str(False)) for i in stats.summary_list}
    assert shown["layer1.0"] == shown["layer2.1"] == shown[""] == ("--", "--")


class _Shared(nn.Module):
    """A functional convolution, one Linear under two names called twice, and a Linear that never runs."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(8, 3, 3, 3))
        self.fc = nn.Linear(8, 8)
        self.again = self.fc
        self.unused = nn.Linear(8, 2)

    def forward(self, x):
        x = F.conv2d(x, self.weight)  # (1, 8, 4, 4): 8 x 27 x 16 = 3,456 MACs
        return self.again(self.fc(x.mean((2, 3))))  # 64 MACs per call


def test_shared_reused_functional_and_unused_modules():
    model = _Shared().eval()
    stats = _torchinfo(model, (1, 3, 6, 6))
    ours = summary(model, (1, 3, 6, 6))
    rows = [(r["name"], r["params"], r["macs"]) for r in ours.layers.to_dict(orient="records")]
    # netprobe: the first name, parameters at the first call, the functional conv's MACs on the root, and the
    # unused Linear (8 x 2 + 2) as a row of its own.
    assert rows == [("", 216, 3456), ("fc", 72, 64), ("fc", 0, 64), ("unused", 18, 0)]
    assert (ours.totals.params, ours.totals.macs) == (216 + 72 + 18, 3456 + 2 * 64)
    # torchinfo: the last name, "(recursive)" at the second call, weight and bias per call as Mult-Adds, the
    # unused Linear folded into the root's own 216 + 18; the conv is not a leaf, so its total misses it.
    theirs = [(_qualname(i), i.is_recursive, i.macs) for i in stats.summary_list[1:]]
    assert theirs == [("again", False, 72), ("again", True, 72)]
    assert stats.summary_list[0].leftover_params() == 216 + 18
    assert (stats.total_params, stats.total_mult_adds) == (306, 2 * 72)


def _leaf_lines(text):
    """(label, output shape, param #, mult-adds) of the rows that show an output shape."""
    rows = []
    for line in text.splitlines():
        cells = [line[:41].strip(), *(line[41 + 26 * i:41 + 26 * (i + 1)].strip() for i in range(3))]
        if cells[1].startswith("["):
            rows.append(tuple(cells))
    return rows


# U-Net: its encoder ModuleList is re-entered after each root-level pool, so the tree must list it again.
@pytest.mark.parametrize("name, size", [("lenet5", (1, 1, 32, 32)), ("resnet20", (1, 3, 32, 32)),
                                        ("unet", (1, 1, 188, 188))])
def test_torchinfo_layout_matches_torchinfo(name, size):
    from netprobe.render.torchinfo_view import torchinfo_table

    model = meta_model(name).to_empty(device="cpu").eval()
    theirs = str(torchinfo.summary(model, input_size=size, verbose=0, device="cpu",
                                   col_names=("output_size", "num_params", "mult_adds")))
    ours = torchinfo_table(summary(model, size), model)
    leaves = {type(m).__name__ for m in model.modules() if not list(m.children())}
    theirs_rows = [r for r in _leaf_lines(theirs) if r[0].lstrip("│ ├└─").split(":")[0] in leaves]
    ours_rows = [r for r in _leaf_lines(ours) if r[0].lstrip("│ ├└─").split(":")[0] in leaves]
    # Same tree labels (type: depth-idx), output shapes and parameter counts, leaf by leaf.
    assert [r[:3] for r in ours_rows] == [r[:3] for r in theirs_rows]
    for (label, shape, params, ours_macs), (*_, their_macs) in zip(ours_rows, theirs_rows):
        kind = label.lstrip("│ ├└─").split(":")[0]
        if kind in ("Conv2d", "Linear"):
            # torchinfo counts the bias add at every output position as one more mult-add; MACs / positions is
            # the weight's size, so params minus that is the bias's.
            dims = [int(d) for d in shape.strip("[]").split(", ")]
            positions = dims[2] * dims[3] if kind == "Conv2d" else 1
            macs = int(ours_macs.replace(",", ""))
            bias = int(params.replace(",", "")) - macs // positions
            assert int(their_macs.replace(",", "")) == macs + bias * positions
    for key in ("Total params", "Trainable params", "Non-trainable params"):
        line = next(x for x in theirs.splitlines() if x.startswith(key + ":"))
        assert line in ours.splitlines()


def test_summary_shows_as_html_in_notebooks():
    html = summary(meta_model("lenet5"), (1, 1, 32, 32))._repr_html_()
    assert "61,706" in html and html.count("<tr") == 12  # header + LeNet-5's 11 layers
