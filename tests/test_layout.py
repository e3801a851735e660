"""The package's layering: no import circles, and nothing below the CLI imports upwards."""

import ast
from helpers import ROOT

PACKAGE = ROOT / "netprobe"
# A layer may import the ones after it, never the ones before (cli -> report -> render -> analysis -> ...).
LAYERS = ["cli", "report", "render", "analysis", "train", "data", "zoo"]


def _imports() -> dict[str, set[str]]:
    """Every netprobe module and the netprobe modules it imports anywhere in its body."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("netprobe"):
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("netprobe")}
        edges[name] = {t for t in found if t in modules and t != name}
    return edges


def test_no_import_circles():
    edges = _imports()
    done, path = set(), []

    def visit(node):
        assert node not in path, f"import circle: {' -> '.join(path[path.index(node):] + [node])}"
        if node in done:
            return
        path.append(node)
        for target in sorted(edges[node]):
            visit(target)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def _layer(module: str):
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_upward_imports():
    upward = [(a, b) for a, targets in _imports().items() for b in targets
              if _layer(a) is not None and _layer(b) is not None and _layer(b) < _layer(a)]
    assert upward == []
