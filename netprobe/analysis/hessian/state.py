"""What a Hessian run's saved pieces must hold before a resumed run trusts them (`resume.Progress`).

A piece is keyed `variant/scope/eigen` (power iteration's lists and generator, or Lanczos' `Eigen` fields),
`variant/trace` (Hutchinson's values, per-group parts and generator, or Hutch++'s `Trace` fields) or
`variant/density/r` (a `Quadrature`). The running piece adds the interrupted search's vector, value and product.
"""

from __future__ import annotations

import math
import numbers

import torch

EIGEN = {"values", "vectors", "iterations", "converged", "residuals"}
TRACE = {"value", "stderr", "probes", "samples"}
DENSITY = {"nodes", "weights", "steps"}
RUNNING = {"v", "value", "i"}


def check_state(finished: dict, running: dict, settings: dict) -> str | None:
    """What is wrong with the saved pieces of a run with `settings` (its `top`, `iters`, `probes` and
    `density_steps` bound the lists), the first problem found, naming its piece; or None."""
    for kind, pieces in (("finished", finished), ("running", running)):
        for key, piece in pieces.items():
            problem = _piece(key, piece, kind == "running") if isinstance(key, str) else "a key that is not text"
            if problem is None:
                problem = _bounds(key, piece, settings)
            if problem:
                return f"{kind} piece {key!r}: {problem}"
    return None


def _bounds(key: str, piece: dict, settings: dict) -> str | None:
    """More results than the settings ask for (a valid piece of another run)."""
    limits = {"values": settings.get("top"), "iterations": settings.get("iters")} if key.endswith("/eigen") else \
        {"values": settings.get("probes")} if "generator" in piece else \
        {"nodes": settings.get("density_steps")} if "nodes" in piece else {}
    for field, most in limits.items():
        counts = piece[field] if field == "iterations" else [len(piece[field])]
        if isinstance(most, int) and any(c > most for c in counts):
            return f"{field} beyond the run's setting of {most}"
    return None


def check_vectors(piece: dict | None, n: int) -> str | None:
    """What is wrong with a saved eigen piece's vectors for a matrix over `n` parameters, or None."""
    vectors = [*(piece or {}).get("vectors", []), *([piece["v"]] if piece and "v" in piece else [])]
    wrong = [tuple(v.shape) for v in vectors if tuple(v.shape) != (n,)]
    return f"a vector of shape {wrong[0]} where the parameters number {n}" if wrong else None


def _piece(key: str, piece, running: bool) -> str | None:
    if not isinstance(piece, dict) or not all(isinstance(k, str) for k in piece):
        return "not a dict of named fields"
    parts = key.split("/")
    kind = parts[-2] if len(parts) > 2 and parts[-1].isdigit() else parts[-1]  # variant/density/r: a run number
    if kind == "eigen":
        return _eigen(piece, running)
    if kind == "trace":
        return _hutchinson(piece) if "generator" in piece or "parts" in piece else _fields(piece, TRACE, _trace)
    if kind == "density":
        return _fields(piece, DENSITY, _density)
    return "an unknown piece"


def _fields(piece: dict, names: set, check) -> str | None:
    if set(piece) != names:
        return f"fields {sorted(piece)} where {sorted(names)} are expected"
    return check(piece)


def _eigen(piece: dict, running: bool) -> str | None:
    allowed = EIGEN | {"generator"} | (RUNNING if running else set())
    if not set(piece) <= allowed or not EIGEN - {"residuals"} <= set(piece):
        return f"fields {sorted(piece)} where {sorted(allowed)} are expected"
    lengths = {len(piece[k]) if isinstance(piece[k], list) else -1 for k in EIGEN - {"residuals"}}
    if len(lengths) != 1 or -1 in lengths:
        return "values, vectors, iterations and converged are not lists of one length"
    problem = (_numbers(piece["values"], "values") or _vectors(piece["vectors"])
               or _counts(piece["iterations"], "iterations")
               or (None if all(isinstance(c, bool) for c in piece["converged"]) else "converged holds a non-bool")
               or _numbers(piece.get("residuals", []), "residuals", least=0.0)
               or ("generator" in piece and _generator(piece["generator"])))
    if problem or not RUNNING & set(piece):
        return problem or None
    if set(piece) & RUNNING != RUNNING:
        return f"an interrupted search needs {sorted(RUNNING)}"
    return _vectors([piece["v"]]) or _numbers([piece["value"]], "value") or _counts([piece["i"]], "i", least=1)


def _hutchinson(piece: dict) -> str | None:
    if set(piece) != {"values", "parts", "generator"}:
        return f"fields {sorted(piece)} where ['generator', 'parts', 'values'] are expected"
    values, parts = piece["values"], piece["parts"]
    if not isinstance(values, list) or not isinstance(parts, dict):
        return "values is not a list or parts not a dict"
    for name, part in parts.items():
        if not isinstance(part, list) or len(part) != len(values):
            return f"the part {name!r} does not hold one number per probe"
        if problem := _numbers(part, f"part {name!r}"):
            return problem
    return _numbers(values, "values") or _generator(piece["generator"])


def _trace(piece: dict) -> str | None:
    stderr = piece["stderr"]
    if not (_number(stderr) and (math.isnan(stderr) or stderr >= 0)):  # one probe: no error estimate (NaN)
        return "stderr is not a non-negative number"
    samples = piece["samples"]
    return (("samples is not a list" if not isinstance(samples, list) else None) or _numbers(samples, "samples")
            or _numbers([piece["value"]], "value") or _counts([piece["probes"]], "probes"))


def _density(piece: dict) -> str | None:
    nodes, weights = piece["nodes"], piece["weights"]
    if not isinstance(nodes, list) or not isinstance(weights, list) or len(nodes) != len(weights) or not nodes:
        return "nodes and weights are not lists of one length"
    return (_numbers(nodes, "nodes") or _numbers(weights, "weights", least=0.0)
            or (None if type(piece["steps"]) is int and piece["steps"] == len(nodes)
                else "steps is not the number of nodes"))


def _number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _numbers(values, label: str, least: float | None = None) -> str | None:
    if not isinstance(values, list) or not all(_number(v) and math.isfinite(v) for v in values):
        return f"{label} holds something other than finite numbers"
    if least is not None and any(v < least for v in values):
        return f"{label} holds a number below {least}"
    return None


def _counts(values, label: str, least: int = 0) -> str | None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in values):
        return f"{label} holds something other than a count >= {least}"
    return None


def _vectors(vectors) -> str | None:
    for v in vectors:
        if not (isinstance(v, torch.Tensor) and v.dim() == 1 and v.is_floating_point() and v.layout == torch.strided
                and v.device.type == "cpu"):
            return "a vector that is not a 1-d floating-point CPU tensor"
        if not bool(torch.isfinite(v).all()) or float(v.norm()) == 0:
            return "a vector with a non-finite entry or of norm zero"
    return None


def _generator(state) -> str | None:
    expected = torch.Generator().get_state()
    if not (isinstance(state, torch.Tensor) and state.dtype == expected.dtype and state.shape == expected.shape):
        return "a random generator state of another type or size"
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, ValueError):
        return "a random generator state torch refuses"
    return None
