"""Roughness of a loss surface as numbers, so the plain-vs-residual contrast of Li et al. (2018, Fig. 5) can
be compared without looking at pictures.

All measures read the grid of a `surface` table (x outer, y inner) and skip non-finite losses:
- `loss_range`: max - min of the loss over the grid points within distance r of the origin (the base
  weights), in loss units: how much the loss changes near the minimum.
- `mean_abs_second_difference`: the mean of |f(i-1) - 2 f(i) + f(i+1)| along every grid line (both axes
  pooled), in loss units per grid step squared; 0 for a plane, large for a jagged surface. Compare surfaces
  on the same grid.
- `local_minima`: interior grid points strictly below all their neighbours (8 in 2-D, 2 in 1-D). Edge points
  are not counted: the loss beyond the grid is unknown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def as_grid(table: pd.DataFrame, column: str = "loss") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, Z) with Z[i, j] the `column` value at (xs[i], ys[j]); a 1-D slice has ys == [0.0]."""
    xs = np.unique(table["x"].to_numpy(dtype=float))
    ys = np.unique(table["y"].to_numpy(dtype=float))
    z = np.full((len(xs), len(ys)), np.nan)
    z[np.searchsorted(xs, table["x"]), np.searchsorted(ys, table["y"])] = table[column].to_numpy(dtype=float)
    return xs, ys, z


def loss_range(z: np.ndarray, xs: np.ndarray, ys: np.ndarray, radius: float) -> float:
    """max - min of the finite values of `z` at grid points within `radius` of (0, 0); NaN if there are none."""
    dist = np.hypot(*np.meshgrid(np.asarray(xs, float), np.asarray(ys, float), indexing="ij"))
    near = z[(dist <= radius) & np.isfinite(z)]
    return float(near.max() - near.min()) if near.size else float("nan")


def mean_abs_second_difference(z: np.ndarray) -> float:
    """Mean |z[i-1] - 2 z[i] + z[i+1]| along both axes of a 2-D array (lines of 3 finite values only)."""
    z = np.atleast_2d(np.asarray(z, float))
    parts = [np.abs(np.diff(z, n=2, axis=axis)).ravel() for axis in (0, 1) if z.shape[axis] >= 3]
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def local_minima(z: np.ndarray) -> int:
    """Number of interior points of `z` (2-D; a (n, 1) or (n,) array is a line) strictly below all neighbours."""
    z = np.asarray(z, float)
    if z.ndim == 1 or z.shape[1] == 1:
        line = z.ravel()
        centre = line[1:-1]
        return int(np.sum(np.isfinite(line[:-2]) & np.isfinite(line[2:]) & np.isfinite(centre)
                          & (centre < line[:-2]) & (centre < line[2:])))
    if min(z.shape) < 3:
        return 0
    centre = z[1:-1, 1:-1]
    below = np.isfinite(centre)
    n, m = z.shape
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                neighbour = z[1 + di:n - 1 + di, 1 + dj:m - 1 + dj]
                # NaN compares False, so a point next to a NaN is never counted.
                below &= centre < neighbour
    return int(below.sum())


def roughness(table: pd.DataFrame, radius: float = 0.5) -> dict:
    """Roughness measures of one surface table: loss at the origin, min/max, range within `radius`, mean
    |second difference|, local minima and non-finite points."""
    xs, ys, z = as_grid(table)
    finite = z[np.isfinite(z)]
    origin = table[(table["x"] == 0.0) & (table["y"] == 0.0)]["loss"]
    return {
        "points": int(z.size),
        "loss_at_origin": float(origin.iloc[0]) if len(origin) else float("nan"),
        "loss_min": float(finite.min()) if finite.size else float("nan"),
        "loss_max": float(finite.max()) if finite.size else float("nan"),
        f"loss_range_r{radius:g}": loss_range(z, xs, ys, radius),
        "mean_abs_d2": mean_abs_second_difference(z),
        "local_minima": local_minima(z),
        "nonfinite_points": int(z.size - finite.size),
    }
