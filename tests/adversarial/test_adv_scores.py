"""Adversarial inputs to `recommender score` and the scores API (issue 9): headers, magnitudes, odd types.

Each case asserts the right number (against the unscaled features and, where cheap, an independent computation)
or the exact one-line error with exit code 2.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from recommender.arrays import load_array
from recommender.cli import main
from recommender.errors import UserError
from recommender.scores import (
    hscore,
    knn_accuracy,
    lfc,
    linear_probe_accuracy,
    logme,
    parc,
    score_all,
)
from recommender.scores.logme import fit_evidence
from recommender.scores.spectrum import FeatureMatrix

N, D = 40, 5
METRICS = ["logme", "hscore", "hscore_reg", "lfc", "parc", "knn", "linear"]
# F x 1e200 is not F times a power of two: every product is rounded (relative 1.1e-16), and these smooth scores
# on well-conditioned F (cond(F'F) ~ 10) move by far less than 1e-9 for such a change.
REL = 1e-9


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """Three shifted Gaussian classes, n = 40, D = 5."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % 3
    return rng.normal(size=(N, D)) + y[:, None], y


def values(F: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every class score of F by name."""
    table = score_all(F, y, names=METRICS)
    return dict(zip(table.score, table.value, strict=True))


def cli(capsys, *args: str) -> tuple[int, object, list[str]]:
    """Run `recommender score ... --json`: exit code, parsed stdout (None when empty), stderr lines."""
    code = main(["score", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err.splitlines()


def loo_1nn(F: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy by brute force on the nearest other point (independent of the package)."""
    distances = ((F[:, None, :] - F[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    return float(np.mean(y[distances.argmin(axis=1)] == y))


# ---- headers are never data -------------------------------------------------------------------------------------

def test_pandas_default_headers_are_not_data(tmp_path, capsys, data):
    """DataFrame/Series.to_csv(index=False) headers `0..D-1` and `0`: n stays 40 and the scores are F's."""
    F, y = data
    pd.DataFrame(F).to_csv(tmp_path / "f.csv", index=False)
    pd.Series(y).to_csv(tmp_path / "y.csv", index=False)
    assert (tmp_path / "f.csv").read_text().splitlines()[0] == "0,1,2,3,4"
    assert load_array(tmp_path / "f.csv").shape == (N, D)
    code, records, err = cli(capsys, "--features", str(tmp_path / "f.csv"), "--labels", str(tmp_path / "y.csv"),
                             "--metrics", "logme,lfc,knn")
    assert code == 0 and err == []
    got = {r["score"]: r["value"] for r in records}
    # the CSV round trip is exact for float64 (pandas writes 17 significant digits)
    assert got["logme"] == pytest.approx(logme(F, y), rel=1e-12)
    assert got["lfc"] == pytest.approx(lfc(F, y), rel=1e-12)
    assert got["knn"] == loo_1nn(F, y)


def test_label_header_with_npy_features_counts_150_rows(tmp_path, capsys):
    """150 examples, labels CSV with the pandas header `0`: 150 labels, not `labels have 151 rows`."""
    rng = np.random.default_rng(1)
    y = np.arange(150) % 2
    F = rng.normal(size=(150, 4)) + y[:, None]
    np.save(tmp_path / "f.npy", F)
    pd.Series(y).to_csv(tmp_path / "y.csv", index=False)
    code, records, err = cli(capsys, "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.csv"),
                             "--metrics", "knn")
    assert (code, err) == (0, [])
    assert records[0]["value"] == loo_1nn(F, y)


def test_headerless_labels_starting_with_0_keep_their_first_row(tmp_path):
    """With the row count known, a first label 0 in a file of exactly n rows is data."""
    (tmp_path / "y.csv").write_text("0\n1\n1\n0\n")
    assert load_array(tmp_path / "y.csv", expect_rows=4).tolist() == [0, 1, 1, 0]
    assert load_array(tmp_path / "y.csv", expect_rows=3).tolist() == [1, 1, 0]


def test_lone_0_without_a_count_asks_for_header_flags(tmp_path, capsys, data):
    """A one-column features CSV starting with 0 could be header or value: one line asking for --header."""
    F, y = data
    pd.Series(F[:, 0]).to_csv(tmp_path / "f.csv", index=False)
    np.save(tmp_path / "y.npy", y)
    args = ["--features", str(tmp_path / "f.csv"), "--labels", str(tmp_path / "y.npy"), "--metrics", "knn"]
    code, records, err = cli(capsys, *args)
    assert (code, records) == (2, None)
    assert err == [(f"recommender score: error: {tmp_path / 'f.csv'}: row 1: the first value 0 may be pandas' default "
                   "header or a value: pass --header or --no-header (header=True / False)")]
    code, records, err = cli(capsys, *args, "--header")
    assert (code, err) == (0, [])
    assert records[0]["value"] == loo_1nn(F[:, :1], y)


def test_no_header_keeps_a_first_row_equal_to_0_to_d_minus_1(tmp_path, capsys):
    """Integer features whose first row happens to be 0,1,2: --no-header keeps it, the default drops it."""
    F = np.vstack([[0, 1, 2], np.random.default_rng(2).integers(0, 9, size=(9, 3))])
    y = np.arange(10) % 2
    pd.DataFrame(F).to_csv(tmp_path / "f.csv", index=False, header=False)
    assert (tmp_path / "f.csv").read_text().startswith("0,1,2\n")
    np.save(tmp_path / "y.npy", y)
    assert load_array(tmp_path / "f.csv").shape == (9, 3)
    np.testing.assert_array_equal(load_array(tmp_path / "f.csv", header=False), F)
    code, records, err = cli(capsys, "--features", str(tmp_path / "f.csv"), "--labels", str(tmp_path / "y.npy"),
                             "--metrics", "lfc", "--no-header")
    assert (code, err) == (0, [])
    assert records[0]["value"] == pytest.approx(lfc(F, y), rel=1e-12)
    code, _, err = cli(capsys, "--features", str(tmp_path / "f.csv"), "--labels", str(tmp_path / "y.npy"),
                       "--metrics", "lfc")
    assert code == 2 and err == [("recommender score: error: labels have 10 rows but there are 9 examples "
                                 "(length mismatch)")]


def test_named_header_still_read_as_header(tmp_path, data):
    """A header of names above numbers is a header, as before."""
    F, _ = data
    pd.DataFrame(F, columns=list("abcde")).to_csv(tmp_path / "f.csv", index=False)
    np.testing.assert_array_equal(load_array(tmp_path / "f.csv"), F)


# ---- magnitudes -------------------------------------------------------------------------------------------------

def test_power_of_two_scales_give_bitwise_equal_scores(data):
    """F x 2^600 and F x 2^-600 are rescaled exactly back to F's binary scale: the very same numbers."""
    F, y = data
    expected = values(F, y)
    assert values(F * 2.0**600, y) == expected
    assert values(F * 2.0**-600, y) == expected


@pytest.mark.parametrize("factor", [1e154, 1e155, 1e200, 1e-200])
def test_scaled_features_give_the_unscaled_scores(data, factor):
    """x1e154 (PARC and kNN were wrong), x1e155 (LogME and H-score failed in LAPACK), x1e200 (NaN), x1e-200."""
    F, y = data
    expected, got = values(F, y), values(F * factor, y)
    for name in METRICS:
        assert got[name] == pytest.approx(expected[name], rel=REL), name
    assert got["knn"] == loo_1nn(F, y) == 0.675


def test_scaled_features_match_independent_definitions(data):
    """x1e200 against the definitions on unscaled F: the n x n LFC, H-score with pinv, brute-force 1-NN."""
    F, y = data
    G = F * 1e200
    K = F @ F.T
    L = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    K, L = K - K.mean(), L - L.mean()
    # dense sums of n^2 terms against the exact linear form: agreement to ~1e-13, asserted at 1e-9
    assert lfc(G, y) == pytest.approx((K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum()), rel=REL)
    means = np.array([F[y == c].mean(axis=0) for c in range(3)])[y]
    by_definition = np.trace(np.linalg.pinv(np.cov(F.T)) @ np.cov(means.T))
    assert hscore(G, y) == pytest.approx(by_definition, rel=REL)
    assert knn_accuracy(G, y) == loo_1nn(F, y)
    _, index = NearestNeighbors(n_neighbors=1).fit(F).kneighbors()
    assert knn_accuracy(G, y) == np.mean(y[index[:, 0]] == y)


def test_logme_is_scale_free_and_its_alpha_scales(data):
    """L(a c^2, b; cF) = L(a, b; F) (SPEC section 1): the same evidence; a* for cF is c^2 a* for F."""
    F, y = data
    Y = np.eye(3)[y]
    base, scaled = fit_evidence(FeatureMatrix(F), Y), fit_evidence(FeatureMatrix(F * 2.0**300), Y)
    np.testing.assert_array_equal(scaled.evidence, base.evidence)
    np.testing.assert_array_equal(scaled.alpha, base.alpha * 2.0**600)
    np.testing.assert_array_equal(scaled.beta, base.beta)


def test_one_huge_column(data, capsys, tmp_path):
    """Column 0 x 1e200: per-column-invariant scores keep F's value; the others refuse in one line."""
    F, y = data
    G = F.copy()
    G[:, 0] *= 1e200
    message = ("feature column(s) 0 are about 1e200 times larger than the typical column; float64 cannot resolve "
               "the other columns next to them (limit 2^26): rescale or drop those columns")
    for name, fn in [("LogME", logme), ("LFC", lfc), ("kNN", knn_accuracy),
                     ("regularized H-score", lambda F, y: hscore(F, y, regularized=True))]:
        with pytest.raises(UserError) as exc:
            fn(G, y)
        assert str(exc.value) == f"{name}: {message}"
    # H-score is invariant to any invertible column scaling, PARC and the probe standardise each column
    assert hscore(G, y) == pytest.approx(hscore(F, y), rel=REL)
    assert parc(G, y) == pytest.approx(parc(F, y), rel=REL)
    assert linear_probe_accuracy(G, y) == linear_probe_accuracy(F, y)
    with pytest.raises(UserError, match=f"^{re.escape('PARC with PCA: ' + message)}$"):
        parc(G, y, pca_dim=3)  # PCA comes before standardising: not invariant to a column's scale
    H = F.copy()
    H[:, 0] *= 2.0**665  # an exact power of two: PARC is bitwise F's
    assert parc(H, y) == parc(F, y)
    np.save(tmp_path / "f.npy", G)
    np.save(tmp_path / "y.npy", y)
    code, records, err = cli(capsys, "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"))
    assert (code, records) == (2, None)
    assert err == [f"recommender score: error: LogME: {message}"]


def test_tiny_columns_do_not_trip_the_balance_check(data):
    """A few near-dead units (GELU tails ~1e-22) beside normal ones: scores as if those columns were zero."""
    F, y = data
    G = F.copy()
    G[:, 0] = 1e-22 * np.random.default_rng(3).normal(size=N)
    Z = F.copy()
    Z[:, 0] = 0.0
    # the dropped eigenvalue ~1e-44 moves LogME by ~1e-44 / a*: far below 1e-12
    assert logme(G, y) == pytest.approx(logme(Z, y), rel=1e-12)
    assert lfc(G, y) == pytest.approx(lfc(Z, y), rel=1e-12)


def test_x1e200_through_the_cli(tmp_path, capsys, data):
    """The CLI prints F's numbers for F x 1e200 (it printed NaN with exit 0)."""
    F, y = data
    np.save(tmp_path / "f.npy", F * 1e200)
    np.save(tmp_path / "y.npy", y)
    code, records, err = cli(capsys, "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"),
                             "--metrics", ",".join(METRICS))
    assert (code, err) == (0, [])
    expected = values(F, y)
    for record in records:
        assert record["value"] == pytest.approx(expected[record["score"]], rel=REL), record


def test_float32_n_below_d_and_constant_features_at_large_scale():
    """float32 x 1e30 (near its range), n < D x 1e200, and constant features at 1e200 behave as at scale 1."""
    rng = np.random.default_rng(4)
    y = np.arange(30) % 3
    F = rng.normal(size=(30, 50)) + y[:, None]
    F32 = F.astype(np.float32)
    # float32 products are rounded to 6e-8 relative; these scores move by < 1e-5 for it on this F
    for fn in (logme, hscore, lfc, parc):
        assert fn(F32 * np.float32(1e30), y) == pytest.approx(fn(F32, y), rel=1e-5), fn.__name__
        assert fn(F * 1e200, y) == pytest.approx(fn(F, y), rel=REL), fn.__name__
    constant = np.full((30, 4), 1e200)
    for fn, message in [(hscore, "features are constant: the H-score is undefined"),
                        (lfc, "features are constant across examples: LFC is undefined"),
                        (parc, ("PARC: an example has the same standardised value in every feature (correlation "
                               "undefined)"))]:
        with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
            fn(constant, y)


def test_a_constant_huge_column_is_centred_exactly(data):
    """A column equal to 1e200 everywhere carries nothing: H-score and PARC are those of F without it."""
    F, y = data
    G = F.copy()
    G[:, 0] = 1e200
    Z = F.copy()
    Z[:, 0] = 1.0
    assert hscore(G, y) == pytest.approx(hscore(F[:, 1:], y), rel=REL)
    assert parc(G, y) == pytest.approx(parc(Z, y), rel=REL)


def test_parc_with_all_pairs_equally_dissimilar_is_an_error_not_nan():
    """Three symmetric points: every dissimilarity ties, Spearman's rho is 0/0."""
    with pytest.raises(UserError, match="^PARC: every pair of examples is equally dissimilar, so the rank "
                                        "correlation is undefined$"):
        parc(np.eye(3), [0, 0, 1])


# ---- odd types: one line, never a TypeError ---------------------------------------------------------------------

@pytest.mark.parametrize("labels, message", [
    ([None, 1, 0, 1], "labels: row 1: missing label (None)"),
    (np.array([1, "a", 0, 1], dtype=object), "labels: row 2: 'a' mixes strings and numbers among the labels"),
    (np.array([1, 2, 3, 4j]), "labels must be class labels (numbers or strings), got dtype complex128"),
])
def test_bad_labels_through_the_api(labels, message):
    """The API raises UserError (a ValueError) naming the problem."""
    F = np.random.default_rng(5).normal(size=(4, 2))
    for fn in (logme, lfc, knn_accuracy):
        with pytest.raises(ValueError) as exc:
            fn(F, labels)
        assert isinstance(exc.value, UserError) and str(exc.value) == message


@pytest.mark.parametrize("features, message", [
    (np.array([[1, 2], [3, 4j], [5, 6]]), "features must be real numbers, got dtype complex128"),
    (np.array([["1", "2"], ["3", "x"], ["5", "6"]]), ("features must be numeric (could not convert string to "
                                                     "float: np.str_('x'))")),
    (np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]")[:, None],
     "features must be real numbers, got dtype datetime64[D]"),
])
def test_bad_feature_types_in_an_npz_through_the_cli(tmp_path, capsys, features, message):
    """String, complex or timestamp X in an .npz: exit 2 with one line (complex values lost their imaginary part)."""
    np.savez(tmp_path / "a.npz", X=features, y=np.array([0, 1, 0]))
    code, records, err = cli(capsys, "--features", f"{tmp_path / 'a.npz'}:X", "--labels", f"{tmp_path / 'a.npz'}:y")
    assert (code, records) == (2, None)
    assert err == [f"recommender score: error: {message}"]
