"""Scores against the canonical reference vectors (tests/data/reference, computed with the authors' public code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from recommender.scores import hscore, knn_accuracy, leep, lfc, logme, nce, parc
from recommender.scores.inputs import one_hot
from recommender.scores.logme import fit_evidence
from recommender.scores.spectrum import FeatureMatrix

REFERENCE = Path(__file__).parents[1] / "data" / "reference"
VECTORS = json.loads((REFERENCE / "reference_vectors.json").read_text())["vectors"]
INPUTS = np.load(REFERENCE / "reference_inputs.npz")
RTOL = 1e-6  # closed forms in float64: the brief's agreement target (observed differences are ~1e-15)
CLASS_CASES = ["cls_n200_d32_k5", "cls_n50_d128_k5", "cls_rankdef_n200_d32_r16_k5", "cls_n300_d96_k3"]


def vectors(metric: str) -> list[dict]:
    """The successful reference vectors of one metric, for pytest ids."""
    return [v for v in VECTORS if v["metric"] == metric and v["status"] == "ok"]


def case_arrays(case: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (or targets) of a reference case."""
    return INPUTS[f"{case}__f"], INPUTS[f"{case}__y"]


def task_of(case: str) -> str:
    """Regression for the reg_ case, classification otherwise."""
    return "regression" if case.startswith("reg") else "classification"


@pytest.mark.parametrize("ref", vectors("logme_converged"), ids=lambda v: v["case"])
def test_logme_matches_converged_maximum(ref):
    F, y = case_arrays(ref["case"])
    assert logme(F, y, task_of(ref["case"])) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", [v for v in vectors("logme_converged") if "alphas" in v], ids=lambda v: v["case"])
def test_logme_precisions_match_converged_alpha_beta(ref):
    F, y = case_arrays(ref["case"])
    Y = one_hot(y, y.max() + 1) if y.ndim == 1 else y
    fit = fit_evidence(FeatureMatrix(F), Y)
    # The reference stopped at relative change 1e-12 and we at 1e-10: a and b agree far inside 1e-6.
    np.testing.assert_allclose(fit.alpha, ref["alphas"], rtol=RTOL)
    np.testing.assert_allclose(fit.beta, ref["betas"], rtol=RTOL)


EARLY_STOPPED = [v for m in ("logme", "logme_icml", "logme_tllib") for v in vectors(m)]


def _early_stopped_inputs(case: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Inputs of the authors' LogME calls, including the derived cases `[:,0]`, `[y%2]`, `[onehot,regression]`."""
    base, _, variant = case.partition("[")
    F, y = case_arrays(base)
    task = task_of(base)
    if variant == ":,0]":
        y = y[:, 0]
    elif variant == "y%2]":
        y = y % 2
    elif variant == "onehot,regression]":
        y, task = one_hot(y, y.max() + 1), "regression"
    return F, y, task


@pytest.mark.parametrize("ref", EARLY_STOPPED, ids=lambda v: f"{v['metric']}-{v['case']}")
def test_logme_never_below_early_stopped_values(ref):
    F, y, task = _early_stopped_inputs(ref["case"])
    ours = logme(F, y, task)
    if ref["metric"] == "logme" and ref["case"] == "cls_n50_d128_k5":
        # The authors' newer code drops (D - rank)/2 log(alpha) for n < D (README, derived_checks): it overshoots.
        assert ours < ref["value"]
        return
    # A maximum is >= any early-stopped value (1e-12 absolute slack for round-off); they stop within 3%.
    assert ours >= ref["value"] - 1e-12
    assert ours == pytest.approx(ref["value"], rel=0.03)


@pytest.mark.parametrize("ref", vectors("leep"), ids=lambda v: f"{v['source'].split('/')[1]}-{v['case']}")
def test_leep(ref):
    _, y = case_arrays(ref["case"])
    assert leep(INPUTS[f"{ref['case']}__probs"], y) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", vectors("nce"), ids=lambda v: f"{v['source'].split('/')[1]}-{v['case']}")
def test_nce(ref):
    _, y = case_arrays(ref["case"])
    assert nce(INPUTS[f"{ref['case']}__z"], y) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", vectors("hscore") + vectors("hscore_parc_published"),
                         ids=lambda v: f"{v['metric']}-{v['source'].split('/')[1]}-{v['case']}")
def test_hscore(ref):
    F, y = case_arrays(ref["case"])
    if ref["metric"] == "hscore_parc_published":
        F = StandardScaler().fit_transform(F)  # PARC's H-score standardises features first
    assert hscore(F, y) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", vectors("hscore_regularized"), ids=lambda v: v["case"])
def test_regularized_hscore(ref):
    F, y = case_arrays(ref["case"])
    assert hscore(F, y, regularized=True) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", vectors("lfc"), ids=lambda v: v["case"])
def test_lfc(ref):
    F, y = case_arrays(ref["case"])
    assert lfc(F, y) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("ref", vectors("lfc"), ids=lambda v: v["case"])
def test_lfc_float32_input_accumulates_in_float64(ref):
    F, y = case_arrays(ref["case"])
    # Only the float32 rounding of the inputs (~6e-8 relative) moves the value; the sums stay float64.
    assert lfc(F.astype(np.float32), y) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("case", CLASS_CASES)
def test_parc_equals_spearman_with_exact_label_dissimilarity(case):
    """PARC (no PCA) against the reference's formula, Spearman on explicit upper triangles, computed apart from
    scipy (which PARC ranks with) as the Pearson correlation of pandas' average ranks.

    The stored `parc` vectors are not used at 1e-6: the reference builds the label dissimilarity as
    1 - np.corrcoef(one-hot), whose same-class entries come out as 0 or +-1e-16 by round-off, so its Spearman sees
    three label values instead of two and the value moves by up to 5% (see test_parc_near_stored_reference).
    With the exact two-valued label matrix the reference formula and ours agree to round-off.
    """
    F, y = case_arrays(case)
    upper = np.triu_indices(len(y), 1)
    features = 1 - np.corrcoef(StandardScaler().fit_transform(F))[upper]
    labels = (y[:, None] != y[None, :])[upper].astype(float)
    expected = 100 * pd.Series(features).rank().corr(pd.Series(labels).rank())
    assert parc(F, y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("ref", vectors("parc"), ids=lambda v: v["case"])
def test_parc_near_stored_reference(ref):
    F, y = case_arrays(ref["case"])
    # 5%: the round-off ties of the reference's label matrix (docstring above) move it by up to 4.5% here.
    assert parc(F, y) == pytest.approx(ref["value"], rel=0.05)


@pytest.mark.parametrize("ref", vectors("knn_loo_1nn"), ids=lambda v: v["case"])
def test_knn_leave_one_out(ref):
    F, y = case_arrays(ref["case"])
    assert 100 * knn_accuracy(F, y, k=1) == pytest.approx(ref["value"], rel=RTOL)


@pytest.mark.parametrize("case", CLASS_CASES)
def test_knn_k5_matches_brute_force_vote(case):
    """k = 5 against an explicit distance matrix and a per-example vote (nearest tied label wins).

    The stored knn_loo_5nn vectors use a different tie rule (an array-broadcasting quirk in PARC's code gives
    1/k credit when all k votes differ, and the smallest label on other ties), so they are not compared.
    """
    F, y = case_arrays(case)
    distances = np.linalg.norm(F[:, None, :] - F[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    correct = 0
    for i, row in enumerate(distances):
        votes = y[np.argsort(row, kind="stable")[:5]]
        counts = {label: np.sum(votes == label) for label in votes}
        top = max(counts.values())
        correct += next(label for label in votes if counts[label] == top) == y[i]
    assert knn_accuracy(F, y, k=5) == pytest.approx(correct / len(y), abs=1e-12)
