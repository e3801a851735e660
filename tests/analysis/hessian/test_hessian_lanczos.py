"""Lanczos Ritz pairs and Hutch++ on symmetric matrices whose spectrum and trace are known by construction."""

import pytest
import torch

from netprobe.analysis.hessian.hessian import rademacher
from netprobe.analysis.hessian.hutchpp import hutchpp
from netprobe.analysis.hessian.lanczos import krylov_runs, ritz_pairs
from netprobe.errors import NetprobeError


def _matrix(values, seed=0):
    """Q diag(values) Q' for a random orthogonal Q."""
    n = len(values)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    return q @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ q.T


def _run(A, steps, seed=0):
    start = rademacher(len(A), torch.Generator().manual_seed(seed)).double()
    return krylov_runs(lambda v: v @ A, [start], steps)[0]


SPECTRUM = [50.0, -40.0, 30.0, *torch.linspace(-1, 1, 97).tolist()]  # three outliers over a bulk


@pytest.mark.parametrize("which, expected", [("magnitude", [50, -40, 30]), ("largest", [50, 30]),
                                             ("smallest", [-40])])
def test_ritz_values_residuals_and_flags_on_a_known_spectrum(which, expected):
    A = _matrix(SPECTRUM)
    found = ritz_pairs(_run(A, 60), len(expected), which, tol=1e-6)
    assert found.values == pytest.approx(expected, abs=1e-6)
    assert found.iterations == [60] * len(expected)
    for value, y, residual, done in zip(found.values, found.vectors, found.residuals, found.converged):
        true = float((A @ y - value * y).norm())  # the residual the estimate beta_m |s_m| stands for
        assert residual == pytest.approx(true, rel=1e-3, abs=1e-9)
        assert done == (true <= 1e-6 * 50)
        assert min(abs(lam - value) for lam in SPECTRUM) <= true + 1e-9  # an eigenvalue within the residual


def test_unconverged_ritz_values_are_flagged():
    A = _matrix(torch.linspace(9, 10, 20).tolist() + torch.linspace(0, 1, 30).tolist())  # 4 steps: unresolved
    found = ritz_pairs(_run(A, 4), 2, "largest", tol=1e-6)
    true = [float((A @ y - v * y).norm()) for v, y in zip(found.values, found.vectors)]
    assert found.residuals == pytest.approx(true, rel=1e-3)
    assert not any(found.converged) and min(true) > 1e-3


def test_lanczos_stops_at_an_invariant_subspace_with_exact_ritz_values():
    A = _matrix([3.0, 3.0, -2.0, -2.0, 0.0, 0.0])  # 3 distinct eigenvalues: Krylov space of dimension 3
    run = _run(A, 6)
    assert len(run.alphas) == 3 and run.last < 1e-8
    found = ritz_pairs(run, 3, "largest")
    assert found.values == pytest.approx([3, 0, -2], abs=1e-10) and all(found.converged)


def test_hutchpp_is_exact_when_the_sketch_spans_the_range():
    A = _matrix([5.0, -3.0, 2.0, 1.0, *([0.0] * 60)])  # rank 4: a 4-column sketch captures all of it
    found = hutchpp(lambda v: v @ A, 64, matvecs=12, seed=1)
    assert found.value == pytest.approx(5.0, abs=1e-10)
    assert found.probes == 12


def _errors(A, matvecs, seeds):
    """Mean absolute error of Hutchinson (matvecs probes) and Hutch++ (matvecs products) over `seeds`."""
    exact, n = float(A.trace()), len(A)
    hutch, plus = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        z = torch.stack([rademacher(n, gen).double() for _ in range(matvecs)])
        hutch.append(abs(float(((z @ A) * z).sum(1).mean()) - exact))
        plus.append(abs(hutchpp(lambda v: v @ A, n, matvecs, seed=seed, batch=4).value - exact))
    return sum(hutch) / len(hutch), sum(plus) / len(plus)


def test_hutchpp_beats_hutchinson_at_equal_products_on_a_low_rank_dominated_matrix():
    A = _matrix([100.0 / (i + 1) ** 2 for i in range(300)])  # a decaying spectrum, as a network Hessian's
    hutch, plus = _errors(A, matvecs=30, seeds=range(20))
    assert plus < hutch / 5


def test_hutchpp_refuses_fewer_than_three_products():
    with pytest.raises(NetprobeError, match="at least 3"):
        hutchpp(lambda v: v, 10, matvecs=2)
