"""Adaptive search (SPEC §7): the sequential protocol, the similarity and warm-start recommenders, `next`."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.cli import main
from recommender.errors import UserError
from recommender.models.adaptive import next_models
from recommender.models.blend import BlendSearch
from recommender.models.observed import observed_results
from recommender.models.session import Ranking, Session, pick_preference, simulate
from recommender.models.similarity import SimilaritySearch, moved_datasets
from recommender.models.warm_start import WarmStartLR

# z-scores (population std) of 4, 3, 2, 1: (x - 2.5) / sqrt(1.25)
Z4 = np.array([1.5, 0.5, -0.5, -1.5]) / np.sqrt(1.25)


def two_datasets() -> pd.DataFrame:
    """d1 ranks a > b > c > d; d2 ranks b > d > c > a (performance 4, 3, 2, 1 by rank)."""
    perf = {"d1": {"a": 4, "b": 3, "c": 2, "d": 1}, "d2": {"a": 1, "b": 4, "c": 2, "d": 3}}
    return pd.DataFrame([{"model": m, "dataset": d, "performance": float(v)} for d, row in perf.items()
                         for m, v in row.items()])


CANDIDATES = pd.DataFrame({"model": ["a", "b", "c", "d"], "dataset": "target"})


def test_similarity_before_two_results_is_mean_perf():
    """With fewer than 2 results every training dataset weighs the same: the mean z-score, whatever beta."""
    session = SimilaritySearch(beta=20.0, shrink=0.0).fit(two_datasets()).session(CANDIDATES)
    # z in d1: a 1.342, b .447, c -.447, d -1.342; in d2: a -1.342, b 1.342, c -.447, d .447
    mean = np.array([Z4[0] + Z4[3], Z4[1] + Z4[0], Z4[2] + Z4[2], Z4[3] + Z4[1]]) / 2
    for picked, values in (([], []), ([1], [0.7])):
        np.testing.assert_allclose(session.rank(picked, values).score, mean, atol=1e-12)


def test_similarity_third_pick_follows_the_agreeing_dataset():
    """Observed b > a agrees with d2 (r = +1) and disagrees with d1 (r = -1): weights softmax(beta * r), and the
    next pick is d (second in d2) rather than c (tied with d on equal weights)."""
    session = SimilaritySearch(beta=2.0, shrink=0.0).fit(two_datasets()).session(CANDIDATES)
    ranking = session.rank([0, 1], [0.5, 0.9], explain=True)
    w1, w2 = np.exp(-2.0), np.exp(2.0)  # d1, d2
    expected_d = (w1 * Z4[3] + w2 * Z4[1]) / (w1 + w2)  # d: -1.342 in d1, .447 in d2
    expected_c = Z4[2]  # c is -.447 in both
    assert ranking.score[3] == pytest.approx(expected_d, abs=1e-12)
    assert ranking.score[2] == pytest.approx(expected_c, abs=1e-12)
    spread_d = np.sqrt((w1 * (Z4[3] - expected_d) ** 2 + w2 * (Z4[1] - expected_d) ** 2) / (w1 + w2))
    assert ranking.spread[3] == pytest.approx(spread_d, abs=1e-12) and ranking.spread[2] == pytest.approx(0, abs=1e-12)
    # two results correlate perfectly with anything: the reason says so rather than r = +1.00
    assert ranking.reasons[3] == ("2 result(s) observed, fewer than the 4 a correlation needs: mean z-score over "
                                  "the 2 training datasets; weight moved towards d2 (x2.0)")
    # through the protocol: b (highest mean z, .894), then a (0 > -.447 on equal weights), then d as above
    assert simulate(session, np.array([0.5, 0.9, 0.6, 0.8]), 3) == [1, 0, 3]


def test_shrinkage_pulls_weights_to_equal():
    """n/(n+shrink) scales the agreement: with shrink = n the logits halve."""
    est = SimilaritySearch(beta=2.0, shrink=2.0).fit(two_datasets())
    w, r = est.session(CANDIDATES).weights([0, 1], np.array([0.5, 0.9]))
    np.testing.assert_allclose(r, [-1.0, 1.0])
    np.testing.assert_allclose(w, np.array([np.exp(-1.0), np.exp(1.0)]) / (np.exp(-1.0) + np.exp(1.0)), atol=1e-12)


class Scripted(Session):
    """Records what the protocol shows it; prefers candidates in a fixed order."""

    def __init__(self, order):
        self.order, self.shown = np.asarray(order, dtype=float), []

    def rank(self, picked, values, explain=False):
        self.shown.append((list(picked), list(values)))
        return Ranking(self.order.copy(), np.zeros_like(self.order))


def test_simulate_shows_only_the_truth_of_the_picks_made():
    """Each step sees exactly the earlier picks and their true values; NaN-scored candidates come last."""
    truth = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    session = Scripted([3.0, np.nan, 5.0, 4.0, 1.0])
    assert simulate(session, truth, 5) == [2, 3, 0, 4, 1]
    assert session.shown == [([], []), ([2], [0.3]), ([2, 3], [0.3, 0.4]), ([2, 3, 0], [0.3, 0.4, 0.1]),
                             ([2, 3, 0, 4], [0.3, 0.4, 0.1, 0.5])]
    np.testing.assert_array_equal(pick_preference([2, 0], 4), [1.0, np.nan, 2.0, np.nan])


def shift_like(n_datasets=6, n_models=12, seed=0) -> pd.DataFrame:
    """Two clusters of datasets that prefer opposite halves of the models, with model side features."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_datasets):
        sign = 1 if d % 2 else -1
        for m in range(n_models):
            perf = 0.6 + 0.02 * sign * (m - n_models / 2) + rng.normal(0, 0.005)
            rows.append({"model": f"m{m}", "dataset": f"d{d}", "performance": perf, "family": "f", "pretrain_dataset":
                         "in1k", "params_m": 10.0 + m, "gmacs": 1.0, "input_size": 224.0, "imagenet_top1": 70.0,
                         "examples": 800.0, "classes": 10.0, "modality": "image", "group": "g"})
    return pd.DataFrame(rows)


def test_warm_start_lr_ranks_as_lr_first_and_learns_the_cluster():
    """Before two results the warm start is the (standardised) LR ranking; after seeing results of the target's
    cluster it ranks that cluster's best model first. Hyper-parameters come from the inner folds' grid."""
    from recommender.models import make_recommender

    pairs = shift_like()
    train, target = pairs[pairs["dataset"] != "d5"], pairs[pairs["dataset"] == "d5"]
    est = WarmStartLR(explore=0.0).fit(train)
    assert est.params_["lam"] in WarmStartLR.GRID["lam"] and est.inner_loss_ is not None
    hidden = target.drop(columns="performance").reset_index(drop=True)
    session = est.session(hidden)
    lr = make_recommender("lr").fit(train).predict(hidden)
    np.testing.assert_allclose(session.rank([], []).score, (lr - lr.mean()) / lr.std(), atol=1e-9)
    truth = target["performance"].to_numpy()
    picks = simulate(session, truth, 4)
    # d5 is an odd dataset (high-index models win) that LR cannot tell apart: after two results the picks move up
    assert truth[picks[2]] > truth[picks[:2]].max() and truth[picks[3]] > truth[picks[:2]].max()


@pytest.mark.slow
def test_blend_ends_are_its_parts_and_its_weight_comes_from_the_inner_folds():
    """Weight 0 ranks as the similarity search and weight 1 as the LR warm start (each with the hyper-parameters it
    chose itself on inner folds), at every step of a search; left unset, the weight is a grid point chosen on the
    inner folds, and a middle weight scores the mean of the two standardised scores."""
    pairs = shift_like()
    train, target = pairs[pairs["dataset"] != "d5"], pairs[pairs["dataset"] == "d5"]
    hidden = target.drop(columns="performance").reset_index(drop=True)
    truth = target["performance"].to_numpy()
    similarity = SimilaritySearch().fit(train).session(hidden)
    warm = WarmStartLR().fit(train).session(hidden)
    ends = {w: BlendSearch(weight=w).fit(train).session(hidden) for w in (0.0, 0.5, 1.0)}
    picks = simulate(similarity, truth, 4)
    for k in range(len(picks) + 1):  # any observed prefix: the ends order the candidates as their parts do
        seen = (picks[:k], truth[picks[:k]])
        a, b = similarity.rank(*seen).score, warm.rank(*seen).score
        for w, part in ((0.0, a), (1.0, b)):
            score = ends[w].rank(*seen).score
            np.testing.assert_array_equal(np.argsort(-score, kind="stable"), np.argsort(-part, kind="stable"))
        mid = ends[0.5].rank(*seen).score
        unit = [(v - v.mean()) / v.std() if v.std() > 0 else 0 * v for v in (a, b)]
        np.testing.assert_allclose(mid, 0.5 * unit[0] + 0.5 * unit[1], atol=1e-9)  # float rounding only
    est = BlendSearch().fit(train)
    assert est.params_["weight"] in BlendSearch.GRID["weight"]
    assert est.inner_loss_ is not None and len(est.inner_loss_) == len(BlendSearch.GRID["weight"])
    assert est.inner_loss_[BlendSearch.GRID["weight"].index(est.params_["weight"])] == est.inner_loss_.min()


def test_next_models_excludes_observed_and_validates_files(tmp_path: Path):
    """`next_models` never re-proposes an observed model; a bad results file names file, row, column, reason."""
    est = SimilaritySearch(beta=2.0, shrink=0.0).fit(two_datasets())
    best = next_models(est, CANDIDATES, pd.Series([0.5, 0.9], index=["a", "b"]), 2)
    assert best["model"].tolist() == ["d", "c"] and best["rank"].tolist() == [1, 2]
    frame = pd.DataFrame({"model": ["a", "zzz", "b", "a"], "performance": ["0.5", "0.7", "high", "0.1"]})
    with pytest.raises(UserError) as err:
        observed_results(frame, "obs.csv", {"a", "b", "c", "d"})
    assert str(err.value).splitlines() == [
        "obs.csv: row 2: model: unknown model 'zzz' (not in the protocol's history)",
        "obs.csv: row 3: performance: not a finite number ('high')",
        "obs.csv: row 4: model: 'a' repeated (also row 1)"]


def test_cli_next_on_a_tiny_store(tmp_path: Path, capsys):
    """`recommender next` uses the target's logged jobs, then a --observed file, and says which it used."""
    url = f"sqlite:///{tmp_path}/h.db"
    rows = [{"model": r.model, "dataset": r.dataset, "metric": "top1", "value": r.performance}
            for r in two_datasets().itertuples()]
    rows += [{"model": "a", "dataset": "target", "metric": "top1", "value": 0.5}]
    pd.DataFrame(rows).to_csv(tmp_path / "jobs.csv", index=False)
    assert main(["history", "--db", url, "ingest", str(tmp_path / "jobs.csv"), "--format", "long",
                 "--set", "protocol=p"]) == 0
    capsys.readouterr()
    assert main(["next", "--db", url, "--dataset", "target", "--protocol", "p", "--budget", "3"]) == 0
    out = capsys.readouterr().out
    assert "used 1 result(s) logged in the store for target under p" in out
    table = [line.split()[1] for line in out.splitlines()[2:] if not line.startswith("why:")]
    assert table == ["b", "c", "d"]  # mean-perf order, a excluded
    (tmp_path / "obs.csv").write_text("model,performance\nb,0.9\n")
    assert main(["next", "--db", url, "--dataset", "target", "--protocol", "p", "--observed",
                 str(tmp_path / "obs.csv")]) == 0
    out = capsys.readouterr().out
    assert f"1 from {tmp_path / 'obs.csv'}" in out and out.splitlines()[2].split()[1] == "d"
    (tmp_path / "bad.csv").write_text("model,performance\nnope,x\n")
    assert main(["next", "--db", url, "--dataset", "target", "--protocol", "p", "--observed",
                 str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"recommender next: error: {tmp_path / 'bad.csv'}: row 1: model: unknown model 'nope' "
                   "(not in the protocol's history)",
                   f"recommender next: error: {tmp_path / 'bad.csv'}: row 1: performance: not a finite number ('x')"]


def test_moved_datasets_names_the_agreeing_datasets_from_four_results():
    names, r = np.array(["d1", "d2", "d3", "d4"]), np.array([0.9, 0.1, -0.5, 0.0])
    w = np.exp(2 * r) / np.exp(2 * r).sum()  # softmax(beta r): only d1 gains weight over the equal 0.25 (x2.8)
    assert moved_datasets(names, w, r, 5) == f"agrees with d1 (weight x{4 * w[0]:.1f}, r +0.90)"
    assert moved_datasets(names, np.full(4, 0.25), np.zeros(4), 5) == (
        "no training dataset agrees with the 5 results more than the others: the mean z-score")


def test_agreement_is_pearson_on_each_datasets_known_models():
    """Every dataset's agreement at once equals np.corrcoef of the known entries, dataset by dataset (0 with fewer
    than two distinct known values on either side); 1e-12: the sums run in another order."""
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(30, 25))
    Z[rng.random(Z.shape) < 0.3] = np.nan
    Z[:, 0] = 0.7  # constant: no agreement
    Z[5:, 1] = np.nan  # at most 2 known among the picks
    session = SimilaritySearch(beta=1.0, shrink=0.0, explore=0.0)._open((Z, np.arange(25).astype(str)),
                                                                        {"beta": 1.0, "shrink": 0.0, "explore": 0.0})
    for picked in ([0, 1], [2, 7, 9], list(range(12)), [1, 4, 6, 20, 21, 29]):
        values = rng.normal(size=len(picked))
        expected = np.zeros(Z.shape[1])
        for d in range(Z.shape[1]):
            known = np.isfinite(Z[picked, d])
            x, y = Z[picked, d][known], values[known]
            if known.sum() >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
                expected[d] = np.corrcoef(x, y)[0, 1]
        np.testing.assert_allclose(session.agreement(picked, values), expected, rtol=0, atol=1e-12)
    assert np.all(session.agreement([0, 1, 2], np.array([1.0, 1.0, 1.0])) == 0)  # constant results: no agreement


def test_blend_prepares_each_training_set_once(monkeypatch: pytest.MonkeyPatch):
    """The blend's own inner folds reuse its parts' preparations: one LR fit per inner fold and one on all the
    training pairs, as many as the warm start alone makes; the choice is that of preparing afresh."""
    pairs = shift_like()
    train = pairs[pairs["dataset"] != "d5"]
    calls = []
    prepare = WarmStartLR._prepare

    def counted(self, frame):
        calls.append(frame["dataset"].nunique())
        return prepare(self, frame)

    monkeypatch.setattr(WarmStartLR, "_prepare", counted)
    WarmStartLR().fit(train)
    alone, calls[:] = len(calls), []
    est = BlendSearch().fit(train)
    assert len(calls) == alone == 1 + train["dataset"].nunique()  # 5 datasets: 5 inner folds and all of them
    fresh = BlendSearch()
    fresh.similarity_, fresh.warm_ = est.similarity_, est.warm_
    fresh._fit(train, {})  # every fold prepared again
    np.testing.assert_array_equal(fresh.inner_loss_, est.inner_loss_)
    assert fresh.params_ == est.params_


def test_moved_datasets_names_tied_weights_in_dataset_order():
    """Weights equal but for rounding (agreements of +1 computed in another order) are a tie: the first datasets
    are named, in their order, whatever the last bits say."""
    names, r = np.array(["a", "b", "c", "d", "e"]), np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    w = np.array([0.1, 0.3 - 1e-16, 0.3, 0.3 + 2e-16, 0.0])
    assert moved_datasets(names, w, r, 2).endswith("weight moved towards b (x1.5), c (x1.5), d (x1.5)")
    assert moved_datasets(names, w[[3, 2, 1, 0, 4]], r, 2).endswith("towards a (x1.5), b (x1.5), c (x1.5)")
