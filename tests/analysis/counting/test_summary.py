"""summary() on tiny purpose-built nets whose counts are worked out by hand in the comments."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from netprobe.analysis.counting.summary import COLUMNS, summary
from netprobe.errors import NetprobeError
from netprobe.render.summary_view import render_summary


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10))


def _row(s, name):
    rows = s.layers[s.layers["name"] == name]
    assert len(rows) == 1, name
    return rows.iloc[0]


def _check_invariants(s, model):
    for key, total in (("params", "params"), ("trainable", "trainable_params"), ("macs", "macs"),
                       ("flops", "flops"), ("activation_bytes", "activation_bytes")):
        assert int(s.layers[key].sum()) == getattr(s.totals, total), key
    assert s.totals.params == sum(p.numel() for p in model.parameters())
    assert list(s.layers.columns) == COLUMNS


def test_tiny_net_counts_by_hand():
    model = _tiny()
    s = summary(model, (1, 3, 8, 8))
    conv = _row(s, "0")
    # 4 output channels x 8x8 positions x (3 in-channels x 3x3 kernel) = 256 x 27
    assert conv.macs == 6912 and conv.params == 4 * 3 * 9 + 4
    assert conv.flops == 2 * 6912 + 256  # + one bias add per output element
    assert conv.input_shape == (1, 3, 8, 8) and conv.output_shape == (1, 4, 8, 8)
    assert conv.activation_bytes == 256 * 4
    assert _row(s, "1").flops == 2 * 256 and _row(s, "1").params == 8  # inference batch norm: scale + shift
    assert _row(s, "2").flops == 256 and _row(s, "2").activation_bytes == 1024
    assert _row(s, "3").flops == 64 * 4  # 2x2 max pool: 4 comparisons per output, 4x4x4 outputs
    assert _row(s, "4").flops == 0 and _row(s, "4").activation_bytes == 0  # flatten is a view
    fc = _row(s, "5")
    assert fc.macs == 640 and fc.flops == 2 * 640 + 10 and fc.params == 650
    assert s.totals.macs == 6912 + 640 and s.totals.params == 112 + 8 + 650
    assert s.uncounted_ops == {} and s.input_shape == (1, 3, 8, 8)
    _check_invariants(s, model)
    assert list(s.layers["name"]) == ["0", "1", "2", "3", "4", "5"]  # execution order, root does no work


def test_batch_scales_macs_and_flops_linearly_and_keeps_params():
    one, many = summary(_tiny(), (1, 3, 8, 8)), summary(_tiny(), (7, 3, 8, 8))
    assert many.totals.macs == 7 * one.totals.macs and many.totals.flops == 7 * one.totals.flops
    assert many.totals.activation_bytes == 7 * one.totals.activation_bytes
    assert many.totals.params == one.totals.params


def test_transposed_grouped_dilated_convolutions():
    # grouped + dilated: 8 out x 9x9 positions x (4/2 in-channels x 3x3) = 648 x 18
    s = summary(nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2, bias=False), (1, 4, 9, 9))
    assert s.totals.macs == 648 * 18 and s.totals.flops == 2 * 648 * 18
    # transposed, stride 2: every input element (8 x 9x9) meets (4 out / 4 groups) x 4x4 weights
    s = summary(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=4, bias=False), (1, 8, 9, 9))
    assert s.layers.iloc[0].output_shape == (1, 4, 18, 18)
    assert s.totals.macs == 8 * 81 * 1 * 16
    # depthwise 1-d: 6 channels x 10 positions x 3 taps
    assert summary(nn.Conv1d(6, 6, 3, padding=1, groups=6, bias=False), (1, 6, 10)).totals.macs == 180


class _Products(nn.Module):
    def forward(self, a, b):
        x = torch.matmul(a, b)  # (2, 3, 4) @ (2, 4, 5): 2 x 3 x 4 x 5 = 120
        y = torch.einsum("bij,bkj->bik", x, x)  # (2, 3, 5) x (2, 3, 5)^T: 2 x 3 x 5 x 3 = 90
        z = torch.baddbmm(y, y, y)  # (2, 3, 3) @ (2, 3, 3): 54, plus 18 additions
        return F.linear(z, torch.ones(4, 3))  # 6 rows x 3 x 4 = 72


def test_matrix_products():
    s = summary(_Products(), [(2, 3, 4), (2, 4, 5)])
    assert s.totals.macs == 120 + 90 + 54 + 72
    assert s.input_shape == ((2, 3, 4), (2, 4, 5))


def test_unbatched_linear_and_dot_products():
    # Linear(5, 3) on a 1-d input runs as a matrix-vector product: 3 x 5, plus 3 bias adds
    s = summary(nn.Linear(5, 3), (5,))
    assert s.totals.macs == 15 and s.totals.flops == 33

    class Dot(nn.Module):
        def forward(self, a):
            return torch.dot(a, a)

    assert summary(Dot(), (7,)).totals.macs == 7


def test_shared_module_counted_once_but_shown_per_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    model = Twice()
    s = summary(model, (1, 5))
    fc = s.layers[s.layers["name"] == "fc"]
    assert list(fc["params"]) == [30, 0] and list(fc["macs"]) == [25, 25]
    assert _row(s, "").flops == 5  # the functional relu runs in the root's forward
    _check_invariants(s, model)


def test_tied_weights_and_unused_modules_count_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 6, bias=False)
            self.dec = nn.Linear(4, 6, bias=False)
            self.dec.weight = self.enc.weight  # one parameter under two names
            self.spare = nn.Linear(3, 3)  # never called

        def forward(self, x):
            return self.enc(x) + self.dec(x)

    model = Tied()
    s = summary(model, (2, 4))
    assert s.totals.params == 24 + 12 == sum(p.numel() for p in model.parameters())
    assert _row(s, "enc").params == 24 and _row(s, "dec").params == 0
    spare = _row(s, "spare")
    assert spare.params == 12 and spare.input_shape is None
    _check_invariants(s, model)


def test_depth_folds_into_ancestors_like_torchinfo():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 1))),
                          nn.Flatten(), nn.Linear(3 * 16, 2))
    full = summary(model, (1, 3, 4, 4))
    folded = summary(model, (1, 3, 4, 4), depth=1)
    assert list(folded.layers["name"]) == ["0", "1", "2"]
    assert _row(folded, "0").macs == 2 * 9 * 16 and _row(folded, "0").params == 24
    assert folded.totals == full.totals
    root = summary(model, (1, 3, 4, 4), depth=0)
    assert list(root.layers["name"]) == [""] and root.layers.iloc[0].macs == full.totals.macs
    _check_invariants(folded, model)
    _check_invariants(root, model)
    # containers without work of their own are not rows
    assert list(summary(model, (1, 3, 4, 4), depth=2).layers["name"]) == ["0.0", "0.1", "1", "2"]


def test_frozen_parameters_are_not_trainable():
    model = _tiny()
    model[0].requires_grad_(False)
    s = summary(model, (1, 3, 8, 8))
    assert s.totals.trainable_params == s.totals.params - 112 and _row(s, "0").trainable == 0


def test_uncounted_operators_are_listed_and_views_are_not():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumsum(x.view(-1), 0).reshape(2, 3).t()

    s = summary(Odd(), (2, 3))
    assert s.uncounted_ops == {"aten.cumsum.default": 1}
    assert s.to_dict()["uncounted_ops"] == {"aten.cumsum.default": 1}
    assert ("not counted (no formula, seen in the trace): aten.cumsum.default x1; MACs, FLOPs and activations are "
            "partial") in render_summary(s, "table")


def test_dtype_sets_activation_bytes():
    s16 = summary(nn.Linear(8, 8), (1, 8), dtype=torch.float16)
    s32 = summary(nn.Linear(8, 8), (1, 8))
    assert s16.totals.activation_bytes == 16 and s32.totals.activation_bytes == 32


def test_model_is_left_as_it_was():
    model = _tiny().train()
    weight = model[0].weight.detach().clone()
    summary(model, (1, 3, 8, 8))
    assert model.training and torch.equal(model[0].weight, weight) and model[0].weight.device.type == "cpu"


def test_to_dict_has_the_documented_shape():
    d = summary(_tiny(), (1, 3, 8, 8)).to_dict()
    assert set(d) == {"schema_version", "context", "model", "input_shape", "totals", "status", "layers"}
    assert set(d["totals"]) == {"params", "trainable_params", "macs", "flops", "activation_bytes"}
    assert d["input_shape"] == [1, 3, 8, 8] and d["model"] == "Sequential"
    assert d["layers"][0]["output_shape"] == [1, 4, 8, 8] and isinstance(d["layers"][0]["macs"], int)


def test_bad_input_raises_one_line():
    with pytest.raises(NetprobeError, match="wrong channel count at 0 \\(Conv2d\\): it expects 3 input channels"):
        summary(_tiny(), (1, 1, 8, 8))
