"""torchinfo as an independent check: a real forward over every zoo model, parameter totals must agree."""

import pytest
import torchinfo

from netprobe.analysis.counting.summary import summary
from netprobe.zoo import list_models, model_spec

from zoo_helpers import meta_model

# Weights are left uninitialised (meta build, then to_empty): counts and shapes do not depend on values, and
# initialising VGG's 138M parameters would cost most of the test.
# Small inputs keep real CPU forwards fast; models with fixed-size heads keep their own input size.
SMALL = {"alexnet": 64, "googlenet": 64, "resnet18": 64, "resnet34": 64, "resnet50": 64,
         "resnet101": 64, "resnet152": 64, "densenet121": 64, "densenet161": 64, "densenet169": 64,
         "densenet201": 64, "unet": 188,
         **{f"vgg{d}{bn}": 32 for d in (11, 13, 16, 19) for bn in ("", "_bn")}}


def _size(name):
    spec = (1, *model_spec(name).input_size)
    side = SMALL.get(name)
    return spec if side is None else (1, spec[1], side, side)


@pytest.mark.parametrize("name", list_models())
def test_param_totals_agree_with_torchinfo(name):
    size = _size(name)
    model = meta_model(name).to_empty(device="cpu").eval()
    info = torchinfo.summary(model, input_size=size, verbose=0, device="cpu")
    ours = summary(meta_model(name), size).totals
    assert ours.params == info.total_params
    assert ours.trainable_params == info.trainable_params


def _leaf_lines(text):
    """(label, output shape, param #, mult-adds) of the rows that show an output shape."""
    rows = []
    for line in text.splitlines():
        cells = [line[:41].strip(), *(line[41 + 26 * i:41 + 26 * (i + 1)].strip() for i in range(3))]
        if cells[1].startswith("["):
            rows.append(tuple(cells))
    return rows


@pytest.mark.parametrize("name, size", [("lenet5", (1, 1, 32, 32)), ("resnet20", (1, 3, 32, 32))])
def test_torchinfo_layout_matches_torchinfo(name, size):
    from netprobe.render.torchinfo_view import torchinfo_table
    from netprobe.zoo import load

    model = load(name).eval()
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
