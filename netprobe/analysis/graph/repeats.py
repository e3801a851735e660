"""Repeated blocks drawn once: n identical consecutive module calls become the first one, marked "x n".

Two sibling calls are identical when their nodes match in order (kind, type, detail, output shape and
parameters), with the same edges among them and the same shapes coming in (what leaves the last one may
differ: it feeds the next stage); they are
consecutive when all the second one reads from outside comes from the first and all the first one's outputs
go to the second (a chain, as the blocks of a ResNet stage). The last block's outgoing edges leave from the
kept one. Runs are found outermost first, then inside each kept block.
"""

from __future__ import annotations

from dataclasses import replace

from netprobe.analysis.graph.dataflow import GROUP_COLUMNS, ArchGraph


class _Collapser:
    def __init__(self, g: ArchGraph):
        self.g = g
        self.rows = {row["id"]: row for row in g.nodes.to_dict(orient="records")}
        self.edges = {(s, d): shape for s, d, shape in g.edges[["src", "dst", "shape"]].itertuples(index=False)}
        self.members: dict[int, list[int]] = {}
        self.children: dict[int, list[int]] = {}
        for node, scope in g.scopes.items():
            for k, call in enumerate(scope):
                self.members.setdefault(call, []).append(node)
                if k and call not in self.children.setdefault(scope[k - 1], []):
                    self.children[scope[k - 1]].append(call)
        self.groups: list[dict] = []

    def signature(self, call: int):
        """What two blocks must share to count as identical (see the module docstring)."""
        nodes = self.members[call]
        local = {n: i for i, n in enumerate(nodes)}
        depth = self.g.calls[call].depth
        rows = tuple((self.rows[n]["kind"], self.rows[n]["type"], self.rows[n]["detail"], self.rows[n]["output_shape"],
                      self.rows[n]["params"], len(self.g.scopes[n]) - depth) for n in nodes)
        inner, into = [], []
        for (s, d), shape in self.edges.items():
            if s in local and d in local:
                inner.append((local[s], local[d], shape))
            elif d in local:
                into.append((local[d], shape))
        return self.g.calls[call].type, rows, sorted(inner), sorted(into)

    def chained(self, a: int, b: int) -> bool:
        """All of a's outputs go to b, and all b reads from outside comes from a."""
        first, second = set(self.members[a]), set(self.members[b])
        for s, d in self.edges:
            if s in first and d not in first and d not in second:
                return False
            if d in second and s not in second and s not in first:
                return False
        return True

    def visit(self, call: int) -> None:
        """Collapse the runs among `call`'s children, then look inside each kept child."""
        kids = self.children.get(call, [])
        i = 0
        while i < len(kids):
            j = i
            while (j + 1 < len(kids) and self.chained(kids[j], kids[j + 1])
                   and self.signature(kids[j + 1]) == self.signature(kids[i])):
                j += 1
            if j > i:
                self.collapse(kids[i:j + 1])
            self.visit(kids[i])
            i = j + 1

    def collapse(self, run: list[int]) -> None:
        """Keep the first block of `run`: drop the others' nodes, and leave the run from the first's nodes."""
        removed = {n for call in run[1:] for n in self.members[call]}
        kept = dict(zip(self.members[run[-1]], self.members[run[0]]))
        edges = {}
        for (s, d), shape in self.edges.items():
            if d in removed:
                continue  # inside the removed blocks, or from the kept block into the next one
            edges[(kept[s], d) if s in removed else (s, d)] = shape
        self.edges = edges
        for n in removed:
            del self.rows[n]
        self.groups.append({"first": self.g.calls[run[0]].name, "last": self.g.calls[run[-1]].name,
                            "repeat": len(run), "nodes": tuple(self.members[run[0]])})


def collapse_repeats(g: ArchGraph) -> ArchGraph:
    """`g` with every run of identical consecutive blocks drawn once (see the module docstring); the runs are
    listed in `groups` (first and last block, repeat count, the kept nodes)."""
    import pandas as pd

    c = _Collapser(g)
    if g.calls:
        c.visit(0)
    nodes = g.nodes[g.nodes["id"].isin(list(c.rows))].reset_index(drop=True)
    edges = pd.DataFrame([(s, d, shape) for (s, d), shape in c.edges.items()], columns=list(g.edges.columns))
    scopes = {n: scope for n, scope in g.scopes.items() if n in c.rows}
    return replace(g, nodes=nodes, edges=edges, groups=pd.DataFrame(c.groups, columns=GROUP_COLUMNS), scopes=scopes)
