"""Properties of the scores: the definitions recomputed independently, invariances, noise monotonicity, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_shrinkage
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from recommender.scores import (
    SCORES,
    hscore,
    knn_accuracy,
    leep,
    lfc,
    linear_probe_accuracy,
    logme,
    nce,
    parc,
    score_all,
)
from recommender.scores.hscore import ledoit_wolf_shrinkage
from recommender.scores.inputs import one_hot
from recommender.scores.logme import fit_evidence
from recommender.scores.spectrum import FeatureMatrix


def evidence_by_definition(F: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """L(a, b) / n of SPEC section 1 with dense D x D algebra (no eigendecomposition)."""
    n, d = F.shape
    A = a * np.eye(d) + b * F.T @ F
    m = b * np.linalg.solve(A, F.T @ y)
    _, log_det = np.linalg.slogdet(A)
    value = (d / 2 * np.log(a) + n / 2 * np.log(b) - n / 2 * np.log(2 * np.pi)
             - b / 2 * np.sum((F @ m - y) ** 2) - a / 2 * m @ m - log_det / 2)
    return value / n


@pytest.mark.parametrize("n, d, rank", [(120, 20, 20), (30, 80, 30), (100, 40, 10)], ids=["n>D", "n<D", "rankdef"])
def test_logme_is_the_maximum_of_the_evidence_by_definition(n, d, rank, clusters):
    F, y = clusters(1, n, rank, 3)
    F = F @ np.random.default_rng(2).normal(size=(rank, d))  # rank-deficient when rank < d
    Y = one_hot(y, 3)
    fit = fit_evidence(FeatureMatrix(F), Y)
    for k in range(3):
        a, b = fit.alpha[k], fit.beta[k]
        best = evidence_by_definition(F, Y[:, k], a, b)
        # Dense solve and slogdet at cond(A) <= 1e12 agree with the eigenbasis to ~1e-9.
        assert fit.evidence[k] == pytest.approx(best, rel=1e-8)
        for da, db in [(1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99)]:
            assert evidence_by_definition(F, Y[:, k], a * da, b * db) < best


def test_logme_falls_as_feature_noise_grows(clusters):
    F, y = clusters(3, 300, 2, 3, spread=0.3)
    rng = np.random.default_rng(4)
    values = [logme(F + rng.normal(0, s, F.shape), y) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(np.diff(values) < 0), values


def test_logme_falls_as_label_noise_grows(clusters):
    F, y = clusters(5, 300, 2, 3, spread=0.3)
    rng = np.random.default_rng(6)
    values = []
    for share in (0.0, 0.2, 0.4, 0.6):
        noisy = y.copy()
        flip = rng.random(len(y)) < share
        noisy[flip] = rng.integers(0, 3, flip.sum())
        values.append(logme(F, noisy))
    assert all(np.diff(values) < 0), values


def test_logme_regression_falls_as_feature_noise_grows():
    rng = np.random.default_rng(7)
    x = rng.uniform(size=(300, 1))
    y = 2 * x[:, 0] + rng.normal(0, 0.1, 300)  # the paper's Figure 3 regression toy
    values = [logme(x + rng.normal(0, s, x.shape), y, task="regression") for s in (0.0, 0.1, 0.3, 1.0)]
    assert all(np.diff(values) < 0), values


def test_one_hot_classification_equals_regression_on_the_same_matrix(clusters):
    F, y = clusters(8, 90, 12, 4)
    assert logme(F, y) == pytest.approx(logme(F, one_hot(y, 4), task="regression"), rel=1e-12)


def test_logme_unbounded_with_n_above_d_blames_an_exact_linear_fit(clusters):
    """n >= D with labels leaked into the features: the error names the exact fit, not repeated examples."""
    F, y = clusters(9, 60, 5, 3)
    leaked = np.hstack([F, one_hot(y, 3)])  # every one-hot target column lies in col(F)
    with pytest.raises(ValueError, match="rank 8 < n = 60: the target is a linear function") as err:
        logme(leaked, y)
    assert "repeated" not in str(err.value) and "n < D" not in str(err.value)
    assert np.isfinite(logme(F, y))


CLASS_SCORES = {
    "logme": logme, "hscore": hscore, "hscore_reg": lambda F, y: hscore(F, y, regularized=True),
    "lfc": lfc, "parc": parc, "knn1": knn_accuracy, "knn5": lambda F, y: knn_accuracy(F, y, k=5),
}


@pytest.mark.parametrize("name", CLASS_SCORES)
@pytest.mark.parametrize("shape", [(80, 10), (40, 60)], ids=["n>D", "n<D"])
def test_invariant_to_permuting_examples_and_relabelling_classes(name, shape, clusters):
    F, y = clusters(9, *shape, 4)
    score = CLASS_SCORES[name]
    base = score(F, y)
    order = np.random.default_rng(10).permutation(len(y))
    relabel = np.array([3, 0, 2, 1])
    # Only summation order changes: round-off level agreement.
    assert score(F[order], y[order]) == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert score(F, relabel[y]) == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_source_scores_invariant_to_permutation_and_relabelling():
    rng = np.random.default_rng(11)
    P = rng.dirichlet(np.ones(6), 100)
    y = rng.integers(0, 3, 100)
    order = rng.permutation(100)
    relabel = np.array([2, 0, 1])
    for score, source in ((leep, P), (nce, P.argmax(axis=1))):
        base = score(source, y)
        assert score(source[order], y[order]) == pytest.approx(base, rel=1e-12)
        assert score(source, relabel[y]) == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("shape", [(90, 12), (25, 40)], ids=["n>D", "n<D"])
def test_lfc_linear_form_equals_the_n_by_n_kernel_definition(shape, clusters):
    F, y = clusters(12, *shape, 3)
    K = F @ F.T
    L = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    K, L = K - K.mean(), L - L.mean()
    assert lfc(F, y) == pytest.approx(np.sum(K * L) / (np.linalg.norm(K) * np.linalg.norm(L)), rel=1e-10)


@pytest.mark.parametrize("shape", [(90, 12), (25, 40)], ids=["n>D", "n<D"])
def test_ledoit_wolf_shrinkage_equals_scikit_learn(shape, clusters):
    F, _ = clusters(13, *shape, 3)
    assert ledoit_wolf_shrinkage(FeatureMatrix(F)) == pytest.approx(sklearn_shrinkage(F), rel=1e-10)


def test_hscore_saturates_at_classes_minus_one_when_n_le_d(clusters):
    F, y = clusters(14, 30, 50, 4)
    assert hscore(F, y) == pytest.approx(3.0, rel=1e-9)  # SPEC: cov F is invertible on all of G's range
    # Shrinkage only lowers each term, up to the n / (n - 1) of scikit-learn's ddof = 0 covariance.
    assert hscore(F, y, regularized=True) < 3.0 * 30 / 29


def test_constant_feature_columns(clusters):
    F, y = clusters(15, 60, 8, 3)
    padded = np.hstack([F, np.full((60, 2), 7.0), np.zeros((60, 1))])
    assert hscore(padded, y) == pytest.approx(hscore(F, y), rel=1e-9)
    # PARC standardises constant columns to 0, which still enter each example's correlation: finite, not equal.
    assert np.isfinite(parc(padded, y))
    assert np.isfinite(logme(padded, y))


def logme_by_definition(F: np.ndarray, y: np.ndarray) -> float:
    """LogME as the mean over classes of max_{a, b} L(a, b) / n, maximised numerically on the dense definition."""
    Y = one_hot(y, y.max() + 1)
    best = []
    for target in Y.T:
        fit = scipy.optimize.minimize(lambda p, t=target: -evidence_by_definition(F, t, *np.exp(p)), np.zeros(2),
                                      method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
        best.append(-fit.fun)
    return float(np.mean(best))


def hscore_by_definition(F: np.ndarray, y: np.ndarray) -> float:
    """tr(pinv(cov F) cov G), G = each example's class mean of F, both covariances dense (np.cov)."""
    G = np.stack([F[y == c].mean(axis=0) for c in range(y.max() + 1)])[y]
    return float(np.trace(np.linalg.pinv(np.cov(F, rowvar=False)) @ np.cov(G, rowvar=False)))


def test_float32_features_give_the_float64_value(clusters):
    """float32 features score as their exactly representable float64 values do under the definitions, computed
    apart from the package: the evidence maximised numerically and the H-score by dense pinv. rel 1e-9: the
    optimiser stops within ~1e-10 of the peak in log a and log b, where L is flat to second order, and cov F has
    condition number ~1e2 (observed gaps ~5e-15); float32 arithmetic anywhere would leave ~1e-7 at best."""
    F, y = clusters(16, 200, 30, 5)
    F32 = F.astype(np.float32)
    exact = F32.astype(np.float64)  # every float32 is a float64: no rounding here
    assert logme(F32, y) == pytest.approx(logme_by_definition(exact, y), rel=1e-9)
    assert hscore(F32, y) == pytest.approx(hscore_by_definition(exact, y), rel=1e-9)


def test_parc_subsamples_above_the_cap_with_a_warning_and_a_fixed_seed(clusters):
    F, y = clusters(17, 300, 10, 3)
    with pytest.warns(UserWarning, match="stratified subsample of 100"):
        first = parc(F, y, max_examples=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert parc(F, y, max_examples=100) == first
        assert parc(F, y, max_examples=100, seed=1) != first


def test_parc_with_pca_matches_an_independent_computation(clusters):
    """parc(pca_dim=8) = 100 x Spearman (Pearson of pandas' average ranks) of the upper triangles of
    1 - corrcoef(standardised full-SVD PCA scores) and of the two-valued label dissimilarity (see
    test_scores_reference for why not 1 - corrcoef(one-hot)).

    rel 1e-9: both sides are float64 computations of the same number (sklearn's deterministic full SVD, sign-fixed
    alike), so they differ by round-off at most (not at all here); 7 components instead of 8 move it by 8%.
    """
    F, y = clusters(18, 120, 40, 3)
    upper = np.triu_indices(len(y), 1)
    scores = StandardScaler().fit_transform(PCA(n_components=8, svd_solver="full").fit_transform(F))
    # Spearman = Pearson of average ranks, ranked by pandas (PARC ranks with scipy)
    ranks = [pd.Series(v).rank() for v in (1 - np.corrcoef(scores)[upper], (y[:, None] != y)[upper].astype(float))]
    expected = 100 * ranks[0].corr(ranks[1])
    assert parc(F, y, pca_dim=8) == pytest.approx(expected, rel=1e-9)
    assert abs(parc(F, y) - expected) > 10  # the projection is applied: without it PARC is 81, not 50


def test_probes_on_separable_and_random_labels(clusters):
    F, y = clusters(19, 150, 5, 3, spread=0.05)
    assert knn_accuracy(F, y) == 1.0
    assert linear_probe_accuracy(F, y, folds=3) == 1.0
    shuffled = np.random.default_rng(20).permutation(y)
    assert linear_probe_accuracy(F, shuffled, folds=3) < 0.6  # chance is 1/3


def test_linear_probe_caps_folds_at_the_smallest_class(clusters):
    F, y = clusters(29, 60, 5, 3, spread=0.05)
    y[:2] = 3  # a class of two examples: two folds, each with one of them
    assert linear_probe_accuracy(F, y, folds=5) == linear_probe_accuracy(F, y, folds=2)


def test_linear_probe_regression_r2():
    rng = np.random.default_rng(21)
    F = rng.normal(size=(200, 4))
    assert linear_probe_accuracy(F, F @ [1.0, -2.0, 0.5, 0.0], folds=3, task="regression") > 0.99


def test_score_all_equals_the_single_functions_and_shares_one_decomposition(clusters):
    F, y = clusters(22, 100, 16, 4)
    P = np.random.default_rng(23).dirichlet(np.ones(5), 100)
    table = score_all(F, y, source_probs=P)
    assert list(table.columns) == ["score", "value", "seconds"]
    assert list(table["score"]) == list(SCORES)
    values = dict(zip(table["score"], table["value"], strict=True))
    assert values["logme"] == pytest.approx(logme(F, y), rel=1e-12)
    assert values["hscore_reg"] == pytest.approx(hscore(F, y, regularized=True), rel=1e-12)
    assert values["lfc"] == pytest.approx(lfc(F, y), rel=1e-12)
    assert values["nce"] == pytest.approx(nce(P.argmax(axis=1), y), rel=1e-12)
    assert (table["seconds"] >= 0).all()


def test_score_all_defaults_follow_task_and_inputs(clusters):
    F, y = clusters(24, 60, 6, 3)
    assert "leep" not in set(score_all(F, y, names=None)["score"])
    targets = F[:, :2] + np.random.default_rng(25).normal(size=(60, 2))
    table = score_all(F, targets, task="regression")
    assert list(table["score"]) == ["logme", "linear"]


def test_registry_describes_every_score():
    assert set(SCORES) == {"logme", "leep", "nce", "hscore", "hscore_reg", "lfc", "parc", "knn", "linear"}
    assert {s.name for s in SCORES.values() if s.needs_source_probs} == {"leep", "nce"}
    assert {s.name for s in SCORES.values() if not s.needs_classes} == {"logme", "linear"}
    assert all(s.direction == "higher" for s in SCORES.values())


def test_logme_takes_the_limit_when_a_target_has_no_linear_signal():
    rng = np.random.default_rng(26)
    F = rng.normal(size=(200, 2))
    y = rng.normal(size=200)
    y -= F @ np.linalg.lstsq(F, y, rcond=None)[0]  # orthogonal to the features: the evidence peaks at a = inf
    n = len(y)
    expected = 0.5 * (np.log(n / (y @ y)) - np.log(2 * np.pi) - 1)  # L / n with m = 0, b = n / ||y||^2
    assert logme(F, y, task="regression") == pytest.approx(expected, rel=1e-9)


def test_logme_takes_the_noise_free_limit_when_n_lt_d_interpolates(clusters):
    """n < D, F F' invertible: here the evidence rises towards b = inf, and LogME is that supremum."""
    F, y = clusters(27, 60, 200, 5)
    Y = one_hot(y, 5)
    fit = fit_evidence(FeatureMatrix(F), Y)
    assert np.isinf(fit.beta).all()
    for k in range(5):
        a = fit.alpha[k]
        approach = [evidence_by_definition(F, Y[:, k], a, b) for b in (1e4, 1e6, 1e8)]
        assert np.all(np.diff(approach) > 0) and approach[-1] <= fit.evidence[k] + 1e-12
        # At b = 1e8 the gap to the limit is O(a / (b s_min)) ~ 1e-7 relative.
        assert approach[-1] == pytest.approx(fit.evidence[k], rel=1e-6)
        assert evidence_by_definition(F, Y[:, k], 0.9 * a, 1e8) < approach[-1]
        assert evidence_by_definition(F, Y[:, k], 1.1 * a, 1e8) < approach[-1]


@pytest.mark.parametrize("shape", [(300, 20), (40, 100)], ids=["n>D", "n<D"])
def test_hscores_ignore_a_large_feature_offset(shape, clusters):
    F, y = clusters(28, *shape, 3)
    # Centring by subtraction from F'F would lose ~eps * 1e10 here; H-scores are shift-invariant by definition.
    for regularized in (False, True):
        assert hscore(F + 1e5, y, regularized) == pytest.approx(hscore(F, y, regularized), rel=1e-8)
