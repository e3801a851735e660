"""netprobe.graph: the dataflow against hand-drawn graphs, torch.fx's own graph, and the papers' figures."""

import collections
import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netprobe
from netprobe.analysis.graph import collapse_repeats, graph
from netprobe.render.graph_labels import skip_edges

from helpers import meta_model


class Branches(nn.Module):
    """stem > (a | b.0 > b.1) > cat > dropout > flatten > head: two branches meeting in a functional cat."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 1)
        self.b = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU())
        self.drop = nn.Dropout()
        self.head = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = self.drop(torch.cat([self.a(x), self.b(x)], 1))
        return self.head(torch.flatten(x, 1))


def _named(g):
    """Edges as (source, target, shape), each node named by its module, or 'cat@' + its container for operators."""
    names = {r.id: (f"{r.type}@{r.name}" if r.kind == "op" else r.name) for r in g.nodes.itertuples()}
    return sorted((names[s], names[d], shape) for s, d, shape in g.edges.itertuples(index=False))


def test_full_depth_edges_are_the_hand_drawn_dataflow():
    g = graph(Branches(), (1, 3, 8, 8))
    assert _named(g) == sorted([
        ("input", "stem", (1, 3, 8, 8)), ("stem", "a", (1, 4, 8, 8)), ("stem", "b.0", (1, 4, 8, 8)),
        ("b.0", "b.1", (1, 2, 8, 8)), ("a", "cat@", (1, 4, 8, 8)), ("b.1", "cat@", (1, 2, 8, 8)),
        ("cat@", "head", (1, 384)),  # the consumer reads the flattened view; dropout runs nothing in eval
        ("head", "output", (1, 5))])
    rows = g.nodes.set_index("name")
    # conv: (out channels x in x k x k) weights + bias; MACs = output elements x in x k x k
    assert rows.loc["stem", "params"] == 4 * 3 * 9 + 4 and rows.loc["stem", "macs"] == 4 * 64 * 27
    assert rows.loc["head", "params"] == 384 * 5 + 5 and rows.loc["head", "macs"] == 384 * 5
    assert rows.loc["stem", "detail"] == "3x3 conv, 4" and rows.loc["head", "detail"] == "384 > 5"


def test_depth_folds_like_summary():
    one = graph(Branches(), (1, 3, 8, 8), depth=1)
    assert ("stem", "b", (1, 4, 8, 8)) in _named(one) and "b.0" not in set(one.nodes["name"])
    zero = graph(Branches(), (1, 3, 8, 8), depth=0)
    assert _named(zero) == [("", "output", (1, 5)), ("input", "", (1, 3, 8, 8))]


def test_public_function_returns_dataframes():
    g = netprobe.graph(Branches(), (1, 3, 8, 8))
    assert list(g.nodes.columns[:4]) == ["id", "name", "kind", "type"] and list(g.edges.columns) == ["src", "dst",
                                                                                                    "shape"]


# torch.fx traces the Python code, not the operators: an independent source for the same dataflow. Its
# call_function nodes that only reshape pass through; Dropout and Identity do nothing in eval mode.
_PASS = {torch.flatten, operator.getitem, getattr}
_FX_OPS = {operator.add: "add", torch.cat: "cat", F.relu: "relu"}


def _fx_edges(model):
    traced = torch.fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    producer, names, edges = {}, {}, collections.Counter()  # fx node -> the node that made its value
    for node in traced.graph.nodes:
        sources = node.all_input_nodes
        if node.op == "placeholder":
            name = "input"
        elif node.op == "output":
            name = "output"
        elif node.op == "call_module" and not isinstance(modules[node.target], (nn.Dropout, nn.Identity)):
            name = node.target
        elif node.op == "call_function" and node.target in _FX_OPS:
            name = _FX_OPS[node.target]
        else:
            producer[node] = producer[sources[0]]  # passes its input's producer on
            continue
        producer[node], names[node] = node, name
        edges.update((names[p], name) for p in dict.fromkeys(producer[s] for s in sources))
    return edges


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_edges_equal_torch_fx_dataflow(name):
    model = meta_model(name).eval()
    g = graph(model, (1, 3, 224, 224))
    names = {r.id: (r.type if r.kind == "op" else r.name) for r in g.nodes.itertuples()}
    ours = collections.Counter((names[s], names[d]) for s, d in zip(g.edges["src"], g.edges["dst"]))
    assert ours == _fx_edges(model)


def test_resnet18_has_eight_skips_three_through_a_1x1_downsample():
    g = graph(meta_model("resnet18"), (1, 3, 224, 224))
    rows = g.nodes.set_index("id")
    adds = rows[rows["type"] == "add"]
    assert len(adds) == 8  # He et al. 2016 table 1: [2, 2, 2, 2] basic blocks
    skips = skip_edges(g)
    assert len(skips) == 8 and {d for _, d in skips} == set(adds.index)
    through = sorted(rows.loc[s, "name"] for s, _ in skips if rows.loc[s, "name"].endswith("downsample.1"))
    assert through == ["layer2.0.downsample.1", "layer3.0.downsample.1", "layer4.0.downsample.1"]
    convs = rows[rows["name"].str.endswith("downsample.0")]["detail"].tolist()
    assert convs == ["1x1 conv, 128, /2", "1x1 conv, 256, /2", "1x1 conv, 512, /2"]


def test_inception3a_four_branches_meet_in_one_concatenation():
    g = graph(meta_model("googlenet"), (1, 3, 224, 224))
    rows = g.nodes.set_index("id")
    cat = rows[(rows["type"] == "cat") & (rows["name"] == "inception3a")]
    assert len(cat) == 1
    into = g.edges[g.edges["dst"] == cat.index[0]]
    branches = sorted((rows.loc[s, "name"].split(".")[1], shape[1]) for s, shape in zip(into["src"], into["shape"]))
    # Szegedy et al. 2015 table 1, inception (3a): #1x1 64, #3x3 128, #5x5 32, pool proj 32 at 28x28
    assert branches == [("branch1", 64), ("branch2", 128), ("branch3", 32), ("branch4", 32)]
    details = rows.set_index("name")["detail"]
    assert details["inception3a.branch2.0.conv"] == "1x1 conv, 96"  # #3x3 reduce
    assert details["inception3a.branch3.0.conv"] == "1x1 conv, 16"  # #5x5 reduce
    assert details["inception3a.branch4.0"] == "3x3 max pool" and details["inception3a.branch4.1.conv"] == "1x1 conv, 32"


def test_unet_shows_four_cropped_bridges():
    g = graph(meta_model("unet"), (1, 1, 572, 572), depth=1)
    rows = g.nodes.set_index("id")
    bridges = sorted((rows.loc[s, "name"], g.edges.set_index(["src", "dst"]).loc[(s, d), "shape"])
                     for s, d in skip_edges(g))
    # Ronneberger et al. 2015 fig. 1: copy and crop 568 > 392, 280 > 200, 136 > 104, 64 > 56
    assert bridges == [("encoder.0", (1, 64, 392, 392)), ("encoder.1", (1, 128, 200, 200)),
                       ("encoder.2", (1, 256, 104, 104)), ("encoder.3", (1, 512, 56, 56))]


def test_resnet56_blocks_collapse_per_stage():
    g = collapse_repeats(graph(meta_model("resnet56"), (1, 3, 32, 32), depth=2))
    # n = 9 blocks per stage (He et al. 2016 sec. 4.2); the first of stages 2 and 3 downsamples, so differs
    assert g.groups[["first", "last", "repeat"]].values.tolist() == [
        ["layer1.0", "layer1.8", 9], ["layer2.1", "layer2.8", 8], ["layer3.1", "layer3.8", 8]]
    assert g.nodes["name"].tolist()[1:7] == ["conv1", "bn1", "", "layer1.0", "layer2.0", "layer2.1"]
    kept = set(g.nodes["id"])
    assert set(g.edges["src"]) <= kept and set(g.edges["dst"]) <= kept and len(g.edges) == len(g.nodes) - 1


def test_collapse_keeps_the_inside_of_a_block_and_reroutes_its_exit():
    full = graph(meta_model("resnet20"), (1, 3, 32, 32))
    g = collapse_repeats(full)
    first = g.groups.iloc[0]
    assert (first["first"], first["last"], first["repeat"]) == ("layer1.0", "layer1.2", 3)
    kept_relu = first["nodes"][-1]
    targets = set(g.nodes.set_index("id").loc[list(g.edges[g.edges["src"] == kept_relu]["dst"]), "name"])
    assert targets == {"layer2.0.conv1", "layer2.0"}  # the next stage's conv and its option-A pad
