"""The torch path of LogME, LFC and the H-scores (recommender.scores.torch_scores) against the numpy scores.

Tolerance: rtol 1e-9. Both paths are float64 and differ only in the Gram product and eigensolver (LAPACK through
scipy against torch's), i.e. in summation order: eigenvalues agree to ~1e-15 relative to the largest, and the
scores are smooth in them, so 1e-9 leaves room for the conditioning of the smallest eigenvalues and still fails
on any real difference (a wrong term, a missed zero eigenvalue, a wrong centring changes the 3rd digit or more).
"""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recommender.errors import UserError  # noqa: E402
from recommender.scores import hscore, lfc, logme  # noqa: E402
from recommender.scores.torch_scores import (  # noqa: E402
    hscore_torch,
    lfc_torch,
    logme_torch,
    score_zoo_torch,
)

RTOL = 1e-9
CASES = [  # (n, D, classes, dtype)
    (200, 16, 2, np.float64),   # n > D, binary
    (300, 24, 10, np.float64),  # n > D, 10 classes
    (40, 64, 10, np.float64),   # n < D: zero eigenvalues in F'F, the wide (n x n) side
    (30, 50, 2, np.float64),    # n < D, binary
    (150, 20, 10, np.float32),  # float32 input, upcast to float64 by both paths
]


def _case(n, dim, classes, dtype, seed=0):
    """Features with class-dependent means (so the scores are informative) and labels covering every class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    centres = rng.normal(size=(classes, dim))
    F = centres[y] + rng.normal(scale=2.0, size=(n, dim)) + 3.0  # an offset: centring matters
    return F.astype(dtype), y


@pytest.mark.parametrize("case", CASES)
def test_scores_match_numpy(case):
    F, y = _case(*case)
    assert logme_torch(F, y, device="cpu") == pytest.approx(logme(F, y), rel=RTOL)
    assert lfc_torch(F, y, device="cpu") == pytest.approx(lfc(F, y), rel=RTOL)
    assert hscore_torch(F, y, device="cpu") == pytest.approx(hscore(F, y), rel=RTOL)
    assert hscore_torch(F, y, regularized=True, device="cpu") == pytest.approx(hscore(F, y, regularized=True),
                                                                               rel=RTOL)


@pytest.mark.parametrize("n,dim", [(120, 10), (25, 40)])
def test_logme_regression_matches_numpy(n, dim):
    rng = np.random.default_rng(1)
    F = rng.normal(size=(n, dim))
    Y = F @ rng.normal(size=(dim, 2)) + rng.normal(scale=0.5, size=(n, 2))
    assert logme_torch(F, Y, device="cpu", task="regression") == pytest.approx(logme(F, Y, task="regression"),
                                                                               rel=RTOL)


def test_zoo_batched_equals_per_model():
    """Two shapes in one zoo (two models each), batched per shape; every row equals the single-model calls."""
    rng = np.random.default_rng(2)
    y = np.arange(60) % 3
    features = [rng.normal(size=(60, 8)) + y[:, None] * s for s in (0.2, 0.5)]
    features += [rng.normal(size=(60, 80)) + y[:, None] * s for s in (0.1, 0.3)]  # n < D
    names = ["a", "b", "c", "d"]
    table = score_zoo_torch(features, y, names, device="cpu")
    assert list(table["model"]) == names
    for F, (_, row) in zip(features, table.iterrows(), strict=True):
        assert row["logme"] == pytest.approx(logme_torch(F, y, device="cpu"), rel=1e-12)
        assert row["lfc"] == pytest.approx(lfc(F, y), rel=RTOL)
        assert row["hscore"] == pytest.approx(hscore(F, y), rel=RTOL)
        assert row["hscore_reg"] == pytest.approx(hscore(F, y, regularized=True), rel=RTOL)
        assert row["logme"] == pytest.approx(logme(F, y), rel=RTOL)


def test_same_errors_as_numpy():
    F, y = _case(50, 5, 2, np.float64)
    bad = F.copy()
    bad[3, 1] = np.nan
    for torch_score, numpy_score in [(logme_torch, logme), (lfc_torch, lfc), (hscore_torch, hscore)]:
        for args in [(bad, y), (F, y[:-1]), (F, np.zeros(50))]:
            with pytest.raises(UserError) as expected:
                numpy_score(*args)
            with pytest.raises(UserError, match="^" + re.escape(str(expected.value)) + "$"):
                torch_score(*args, device="cpu")
    with pytest.raises(UserError, match="model b: features contain 1 NaN"):
        score_zoo_torch([F, bad], y, ["a", "b"], device="cpu")
    with pytest.raises(UserError, match="2 feature matrices but 1 model names"):
        score_zoo_torch([F, F], y, ["a"], device="cpu")


def test_package_import_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, recommender.scores; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
def test_cuda_matches_numpy():
    for case in CASES:
        F, y = _case(*case)
        assert logme_torch(F, y, device="cuda") == pytest.approx(logme(F, y), rel=RTOL)
        assert lfc_torch(F, y, device="cuda") == pytest.approx(lfc(F, y), rel=RTOL)
        assert hscore_torch(F, y, device="cuda") == pytest.approx(hscore(F, y), rel=RTOL)
    table = score_zoo_torch([_case(*CASES[0])[0]] * 2, _case(*CASES[0])[1], ["a", "b"], device="cuda")
    assert table["logme"].iloc[0] == pytest.approx(logme(*_case(*CASES[0])), rel=RTOL)


def test_decompositions_come_from_torch(monkeypatch):
    """The numpy eigensolver is never reached: every decomposition the scores use was made on torch."""
    from recommender.scores import spectrum

    def refuse(*_args):
        raise AssertionError("numpy eigh called")

    monkeypatch.setattr(spectrum, "_eigh", refuse)
    for case in CASES[:3]:
        F, y = _case(*case)
        logme_torch(F, y, device="cpu")
        lfc_torch(F, y, device="cpu")
        hscore_torch(F, y, device="cpu")
        hscore_torch(F, y, regularized=True, device="cpu")
    score_zoo_torch([F, F], y, ["a", "b"], device="cpu")
