"""Splits, strategies, robustness and the no-leakage guarantee on small hand-built pair tables."""

import numpy as np
import pandas as pd
import pytest
from pair_tables import quality_pairs as pair_table

from recommender.errors import UserError
from recommender.evaluation import check_pairs, evaluate, make_folds, make_strategy
from recommender.evaluation.strategies import Hybrid, Learned, hybrid_preference
from recommender.models.rankers import MeanNormalisedPerformance
from recommender.models.selection import inner_folds


def test_loo_and_unseen_dataset_folds_hold_out_whole_datasets():
    """LOO trains on every other dataset; unseen-dataset trains on the sources only and tests known models."""
    pairs = pair_table()
    folds = make_folds(pairs, "loo")
    assert [f.name for f in folds] == [f"d{i}" for i in range(5)]
    for f in folds:
        assert set(f.test["dataset"]) == {f.name} and f.name not in set(f.train["dataset"])
        assert len(f.train) + len(f.test) == len(pairs)
    (fold,) = make_folds(pairs.query("not (dataset == 'd3' and model == 'm9')"), "unseen-dataset", sources=["d0", "d1"])
    assert set(fold.train["dataset"]) == {"d0", "d1"} and set(fold.test["dataset"]) == {"d2", "d3", "d4"}
    with pytest.raises(UserError, match="unknown"):
        make_folds(pairs, "unseen-dataset", sources=["nope"])


def test_unseen_model_folds_hold_out_a_fifth_of_the_models():
    """Each (dataset, seed) fold tests 20% of that dataset's models, never seen in its training pairs."""
    folds = make_folds(pair_table(n_models=10), "unseen-model", seeds=(0, 1))
    assert len(folds) == 10
    for f in folds:
        assert f.train["dataset"].nunique() == 1 and len(f.test) == 2
        assert not set(f.test["model"]) & set(f.train["model"])
    assert set(folds[0].test["model"]) != set(folds[1].test["model"])  # seeds differ


def test_oracle_random_and_rankings_on_loo():
    """Oracle has tau 1 and regret 0; a score tracking performance beats noise; random regret is the exact mean."""
    pairs = pair_table()
    names = ["oracle", "random", "score:good", "score:bad", "mean-perf", "imagenet"]
    ev = evaluate(make_folds(pairs, "loo"), {n: make_strategy(n) for n in names}, budgets=(1, 3))
    s = ev.summary().set_index(["strategy", "measure", "budget"])["mean"]
    assert s[("oracle", "weighted_tau", pd.NA)] == pytest.approx(1.0)
    assert s[("oracle", "regret", 1)] == 0.0
    assert s[("score:good", "weighted_tau", pd.NA)] > 0.7 > s[("score:bad", "weighted_tau", pd.NA)]
    assert s[("mean-perf", "regret", 1)] < s[("random", "regret", 1)]
    # random regret at B=1 is best minus the mean performance, per dataset.
    by_d = pairs.groupby("dataset")["performance"]
    assert s[("random", "regret", 1)] == pytest.approx((by_d.max() - by_d.mean()).mean(), abs=1e-12)
    assert ("random", "weighted_tau", pd.NA) not in s.index  # random is no ranking: no correlation is reported


def test_mean_normalised_performance_is_mean_z_score():
    """The task-agnostic baseline is the per-model mean of within-dataset z-scores (ddof 0)."""
    train = pair_table(n_datasets=3)
    z = train.groupby("dataset")["performance"].transform(lambda v: (v - v.mean()) / v.std(ddof=0))
    expected = z.groupby(train["model"]).mean()
    got = MeanNormalisedPerformance().fit(train).predict(pd.DataFrame({"model": ["m3", "m7", "new"]}))
    np.testing.assert_allclose(got[:2], expected[["m3", "m7"]], atol=1e-12)
    assert np.isnan(got[2])  # a model never seen has no history: no opinion, reported, not guessed


def test_mean_normalised_performance_counts_a_constant_dataset_as_zero():
    """A dataset where every model scored the same adds z = 0 to each model's mean (it was dropped as NaN)."""
    train = pair_table(n_datasets=3)
    train.loc[train["dataset"] == "d2", "performance"] = 0.7
    varied = train[train["dataset"] != "d2"]
    z = varied.groupby("dataset")["performance"].transform(lambda v: (v - v.mean()) / v.std(ddof=0))
    expected = z.groupby(varied["model"]).sum() / 3
    got = MeanNormalisedPerformance().fit(train).predict(pd.DataFrame({"model": expected.index}))
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_hybrid_preference_and_chosen_split():
    """Top-a agnostic models come first, then task-aware order; a is chosen on training folds only."""
    pref = hybrid_preference(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 1.0, 3.0, 2.0]), a=1)
    assert list(np.argsort(-pref)) == [0, 2, 3, 1]
    # an agnostic ranking with no opinion (models never seen) leaves the whole pick to the task-aware score
    blind = hybrid_preference(np.full(4, np.nan), np.array([0.0, 1.0, 3.0, 2.0]), a=2)
    assert list(np.argsort(-blind)) == [2, 3, 1, 0]
    hybrid = Hybrid(make_strategy("imagenet"), make_strategy("score:good"), budgets=(1, 3)).fit(pair_table())
    # score_good is almost the truth, so the training folds should choose to spend the whole budget on it.
    assert hybrid.split_ == {1: 0, 3: 0}


@pytest.fixture()
def tune_calls(monkeypatch) -> list[tuple[pd.DataFrame, np.ndarray, dict]]:
    """Records the pairs, targets and result of each call of recommender.models.tune (which still runs)."""
    import recommender.models

    calls, real = [], recommender.models.tune

    def recording(kind, X, y=None, **kw):
        best = real(kind, X, y, **kw)
        calls.append((X, np.asarray(y, dtype=float), best))
        return best

    monkeypatch.setattr(recommender.models, "tune", recording)
    return calls


def pair_keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """The (dataset, model) pairs of a pair table."""
    return set(zip(frame["dataset"], frame["model"], strict=True))


def test_learned_strategy_tunes_on_its_training_pairs_only(tune_calls):
    """With tune_trials, Optuna sees exactly the fold's training pairs, without the answer, and its choice is used."""
    fold = make_folds(pair_table(), "loo")[0]
    est = Learned("lr", "d,m,good", tune_trials=2).fit(fold.train)
    ((X, y, best),) = tune_calls
    assert pair_keys(X) == pair_keys(fold.train) and not {"performance", "selected_by"} & set(X.columns)
    np.testing.assert_array_equal(y, fold.train["performance"].to_numpy())
    assert est.params_ == best and est.estimator_.alpha == best["alpha"]


def test_robustness_cases_are_reported_not_averaged():
    """Too few models, constant performance, missing scores and broken runs all land in issues."""
    pairs = pair_table(n_datasets=4)
    pairs = pairs[~((pairs["dataset"] == "d0") & (pairs["model"] > "m1"))]  # d0 keeps 2 models
    pairs.loc[pairs["dataset"] == "d1", "performance"] = 0.7  # constant
    pairs.loc[(pairs["dataset"] == "d2") & (pairs["model"] == "m4"), "performance"] = 0.0  # broken run
    pairs.loc[(pairs["dataset"] == "d3") & (pairs["model"] == "m2"), "score_good"] = np.nan
    clean, issues = check_pairs(pairs)
    ev = evaluate(make_folds(clean, "loo"), {"s": make_strategy("score:good")}, budgets=(1,), issues=issues)
    found = set(zip(ev.issues["dataset"], ev.issues["issue"], strict=True))
    assert {("d0", "too few models"), ("d1", "constant performance"), ("d2", "broken run"),
            ("d3", "missing prediction")} <= found
    assert set(ev.results["dataset"]) == {"d2", "d3"} and ev.results["value"].notna().all()
    assert "m4" not in set(ev.predictions.query("dataset == 'd2'")["model"])
    with pytest.raises(UserError, match="twice"):
        check_pairs(pd.concat([pairs, pairs.head(1)]))


def _last_fold_predictions(pairs, split, strategies, **kw):
    """Predictions of the strategies on the split's last fold, sorted for comparison."""
    ev = evaluate(make_folds(pairs, split, **kw)[-1:], strategies, budgets=(1, 3))
    return ev.predictions.sort_values(["strategy", "dataset", "model"]).reset_index(drop=True)


@pytest.mark.parametrize("split, kw", [("loo", {}), ("unseen-model", {"seeds": (0,)}),
                                       ("unseen-dataset", {"sources": ("d0", "d1")})])
@pytest.mark.slow
def test_poisoning_the_held_out_fold_changes_no_prediction(split, kw, tune_calls):
    """No leakage: scrambling the held-out pairs' performance leaves every non-oracle prediction unchanged,
    and Optuna (learned strategies, alone and in a hybrid) tunes on training pairs only."""
    pairs = pair_table(n_models=15)
    strategies = {n: make_strategy(n, (1, 3)) for n in ["mean-perf", "score:good", "hybrid:mean-perf:good"]}
    strategies |= {n: make_strategy(n, (1, 3), tune_trials=2) for n in ["lr+good", "learned-hybrid:lr:good"]}
    strategies["fm"] = Learned("fm", params={"epochs": 20})  # few epochs: any fit at all would show a leak
    fold = make_folds(pairs, split, **kw)[-1]
    poisoned = pairs.copy()
    held = poisoned.index.isin(fold.test.index)
    poisoned.loc[held, "performance"] = np.random.default_rng(1).uniform(0.1, 0.9, held.sum())
    before = _last_fold_predictions(pairs, split, strategies, **kw)
    after = _last_fold_predictions(poisoned, split, strategies, **kw)
    # mean-perf has no opinion on models never seen (unseen-model); every other strategy predicted each test pair.
    assert before.groupby("strategy").size().reindex(["score:good", "lr+good", "fm"]).eq(len(fold.test)).all()
    np.testing.assert_array_equal(before["prediction"], after["prediction"])
    assert not np.array_equal(before["performance"], after["performance"])  # the poison did land
    # lr+good once, the learned hybrid on its inner folds and once on the whole fold; before and after
    inner = inner_folds(fold.train, strategies["learned-hybrid:lr:good"].max_inner_folds)
    assert len(tune_calls) == 2 * (2 + len(inner))
    assert all(pair_keys(X) <= pair_keys(fold.train) for X, _, _ in tune_calls)


@pytest.mark.slow
def test_static_strategies_score_the_same_in_the_sequential_protocol():
    """A static strategy ignores what it is shown: evaluate(adaptive=True) gives exactly its static numbers."""
    pairs = pair_table(n_models=8)
    names = ["random", "mean-perf", "score:good", "hybrid:mean-perf:good", "lr"]
    static, sequential = (evaluate(make_folds(pairs, "loo"), {n: make_strategy(n, (1, 3)) for n in names}, (1, 3),
                                   adaptive=mode).results for mode in (False, True))
    pd.testing.assert_frame_equal(static, sequential)


def _opposed_table(n_datasets: int = 5, seed: int = 0) -> pd.DataFrame:
    """pair_table with two kinds of dataset (d1, d3 against the rest) that rank the models in opposite orders."""
    pairs = pair_table(n_datasets=n_datasets, n_models=12, seed=seed)
    odd = pairs["dataset"].isin(["d1", "d3"])
    pairs.loc[odd, "performance"] = 1.3 - pairs.loc[odd, "performance"]
    return pairs


def _assert_only_picked_truth_reaches(picks, truth: np.ndarray, poison) -> None:
    """picks(values) gives the first 5 picks with `truth` replaced by `values`; poison(values, keep, rng) scrambles
    every result but `keep` (and may scramble more of what the strategy must not see). With all but the first k
    picks' results scrambled, the first k + 1 picks stay the same (pick k + 1 depends on the first k only)."""
    clean, moved = picks(truth), False
    rng = np.random.default_rng(3)
    for k in range(5):
        for _ in range(3):
            keep = np.isin(np.arange(truth.size), clean[:k])
            got = picks(poison(truth, keep, rng))
            assert got[: k + 1] == clean[: k + 1]
            moved |= got != clean
    assert moved  # the poison can move later picks once picked: the strategy does read what it is shown


def _first_picks(est, hidden: pd.DataFrame, values: np.ndarray) -> list[int]:
    """The first 5 sequential picks (positions in `hidden`) of a fitted adaptive strategy shown `values`."""
    from recommender.evaluation.sequential import adaptive_preferences

    pref = adaptive_preferences(est, hidden, values, (5,))[5]
    return list(np.argsort(-np.nan_to_num(pref, nan=-1))[:5])


def _scramble(values: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    out[~keep] = rng.uniform(0.0, 2.0, (~keep).sum())
    return out


@pytest.mark.parametrize("name", ["adaptive:similarity", "adaptive:lr", "adaptive:ucb"])
def test_poisoning_unpicked_results_changes_no_pick_until_it_is_picked(name):
    """Nothing but the truth of the picks already made reaches an adaptive strategy (leave-one-dataset-out)."""
    fold = make_folds(_opposed_table(), "loo")[-1]
    est = make_strategy(name, (1, 3, 5)).fit(fold.train)
    hidden = fold.test.drop(columns=["performance", "selected_by"])
    _assert_only_picked_truth_reaches(lambda v: _first_picks(est, hidden, v), fold.test["performance"].to_numpy(),
                                      _scramble)


def _two_protocol_table() -> pd.DataFrame:
    """Protocol A on d0..d4 (the training history) and protocol C on d0 (seen by A) and d5 (not), same models."""
    source = _opposed_table().assign(protocol="A")
    target = _opposed_table(n_datasets=2, seed=1).replace({"dataset": {"d1": "d5"}}).assign(protocol="C")
    return pd.concat([source, target], ignore_index=True)


def test_cross_protocol_adaptive_evaluation_reports_one_row_per_strategy(tmp_path):
    """evaluate --adaptive under the cross-protocol split: summary.csv keeps seen and unseen apart, the report's
    table is one row per strategy with the mean over every target dataset."""
    from recommender.evaluation.report import write_report

    folds = make_folds(_two_protocol_table(), "cross-protocol", protocols=["C"], train_protocols=["A"])
    names = ["mean-perf", "adaptive:similarity"]
    ev = evaluate(folds, {n: make_strategy(n, (1, 3)) for n in names}, (1, 3), adaptive=True)
    report = write_report(ev, tmp_path / "r", "cross", {}, scatter=False)
    split = pd.read_csv(report.parent / "summary.csv")
    assert set(split["seen"]) == {True, False}
    for name in names:
        values = ev.results.query("strategy == @name and measure == 'relative_regret' and budget == 3")["value"]
        assert len(values) == 2  # d0 and d5
        row = next(line for line in report.read_text().splitlines() if line.startswith(f"| {name} |"))
        assert f"{values.mean():.3f} ± " in row  # three decimals as printed


@pytest.mark.parametrize("name", ["adaptive:similarity", pytest.param("adaptive:lr", marks=pytest.mark.slow)])
@pytest.mark.parametrize("target", ["d0", "d5"])  # d0: seen by the training protocol, d5: not
def test_cross_protocol_adaptive_sees_only_the_target_truth_of_its_picks(name, target):
    """Cross-protocol: training is exactly the protocol-A pairs (d0 included; no protocol-C pair, whatever its
    value), and an adaptive strategy ranking a C dataset is shown only the C results of the picks it made."""
    pairs = _two_protocol_table()
    source = pairs[pairs["protocol"] == "A"]
    is_c = pairs["protocol"] == "C"
    pairs.loc[is_c, "performance"] = np.random.default_rng(5).uniform(0.0, 2.0, is_c.sum())  # in training: a leak
    fold = next(f for f in make_folds(pairs, "cross-protocol", protocols=["C"], train_protocols=["A"])
                if f.name == target)
    pd.testing.assert_frame_equal(fold.train, source)
    assert set(fold.test["protocol"]) == {"C"} and set(fold.test["dataset"]) == {target}
    assert fold.seen == frozenset({"d0"})
    est = make_strategy(name, (1, 3, 5)).fit(fold.train)
    hidden = fold.test.drop(columns=["performance", "selected_by"])
    _assert_only_picked_truth_reaches(lambda v: _first_picks(est, hidden, v), fold.test["performance"].to_numpy(),
                                      _scramble)


def test_auto_is_told_the_protocol_ranked_where_one_is(monkeypatch):
    """`evaluate --protocol p` (with --train-protocols as extra history) builds `auto` measured on p's datasets, as
    `next` is; several protocols ranked, or none named: every dataset."""
    import recommender.evaluation.pipeline as pipeline
    from recommender.models.auto import Auto

    assert make_strategy("auto", protocol="p").protocol == "p" and make_strategy("auto").protocol is None
    built: list = []

    def spy(*args, **kwargs):
        built.append(make_strategy(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(pipeline, "make_strategy", spy)
    pairs = pd.concat([pair_table().assign(protocol="p"), pair_table().assign(protocol="q")], ignore_index=True)
    for protocols, expected in ((["p"], "p"), (["p", "q"], None), (None, None)):
        built.clear()
        pipeline.run_evaluation(pairs, "loo", ["mean-perf", "auto"], (1,), protocols=protocols)
        (auto,) = [s for s in built if isinstance(s, Auto)]
        assert auto.protocol == expected
