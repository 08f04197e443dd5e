"""recommender.models.auto: the Gaussian combination against its closed forms, the reliability line, the pooled
update, the guard, the calibration on data drawn from the model itself, and the protocol rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recommender.errors import UserError
from recommender.evaluation.factory import make_strategy
from recommender.models.auto import Auto
from recommender.models.reliability import MIN_OBSERVED, agreements, pooled, posterior


def _gaussian_history(n_datasets: int, n_models: int, reliability: dict[str, float], seed: int,
                      protocol: str = "p") -> pd.DataFrame:
    """Pairs whose sources are standard normal with the given correlation with the (standard normal) result;
    the history prior's reliability comes from a model quality shared by every dataset."""
    quality = np.random.default_rng(1234).normal(size=n_models)  # one world: every call shares the models' quality
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_datasets):
        own = rng.normal(size=n_models)
        truth = 0.8 * quality + 0.6 * own  # the shared quality makes the history prior informative
        for name, r in reliability.items():
            noise = rng.normal(size=n_models)
            rows_score = r * truth + np.sqrt(1 - r * r) * noise
            for m in range(n_models):
                rows.append({"model": f"m{m}", "dataset": f"d{d}", "protocol": protocol, "source": name,
                             "value": rows_score[m], "performance": truth[m]})
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["model", "dataset", "protocol", "performance"], columns="source",
                            values="value").reset_index()
    return wide.rename(columns={name: f"score_{name}" for name in reliability}).rename_axis(columns=None)


def test_posterior_is_gaussian_conditioning() -> None:
    # the conditional of t given z from the joint precision matrix: mean -P[0,1:] z / P[0,0], variance 1 / P[0,0]
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 3))
    z[:, 1] += 0.5 * z[:, 0]
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    r = np.array([0.5, 0.4, 0.2])
    joint = np.block([[np.ones((1, 1)), r[None, :]], [r[:, None], np.corrcoef(z, rowvar=False)]])
    precision = np.linalg.inv(joint)
    out = posterior(z, ["a", "b", "c"], r, shrinkage=0.0)
    np.testing.assert_allclose(out.mean, -z @ precision[0, 1:] / precision[0, 0], rtol=1e-10)  # float64 solves
    assert out.std == pytest.approx(np.sqrt(1 / precision[0, 0]), rel=1e-10)
    assert list(out.weight.index) == ["a", "b", "c"]


def test_posterior_counts_a_repeated_source_once() -> None:
    # two copies of one source carry no more than one: same mean, same variance
    z = np.random.default_rng(1).normal(size=(50, 1))
    z = (z - z.mean()) / z.std()
    one = posterior(z, ["a"], np.array([0.6]), shrinkage=0.0)
    two = posterior(np.hstack([z, z]), ["a", "b"], np.array([0.6, 0.6]), shrinkage=1e-9)
    np.testing.assert_allclose(two.mean, one.mean, atol=1e-6)
    assert two.std == pytest.approx(one.std, abs=1e-6)
    assert one.std == pytest.approx(0.8)  # sqrt(1 - 0.6^2)


def test_agreements_are_correlations_with_the_other_sources_mean() -> None:
    z = np.random.default_rng(2).normal(size=(30, 3))
    expected = [stats.pearsonr(z[:, s], np.delete(z, s, axis=1).mean(axis=1)).statistic for s in range(3)]
    np.testing.assert_allclose(agreements(z), expected, rtol=1e-12)
    np.testing.assert_array_equal(agreements(z[:, :1]), [0.0])  # one source: nothing to agree with


def test_pooled_is_fisher_z_weighting() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(12, 2))
    results = z[:, 0] + 0.5 * rng.normal(size=12)
    prior = np.array([0.3, 0.1])
    seen = np.array([stats.pearsonr(z[:, s], results).statistic for s in range(2)])
    expected = np.tanh((5 * np.arctanh(prior) + 9 * np.arctanh(seen)) / 14)  # 12 results are worth 12 - 3
    np.testing.assert_allclose(pooled(prior, z, results, strength=5), expected, rtol=1e-12)
    few = MIN_OBSERVED - 1
    np.testing.assert_array_equal(pooled(prior, z[:few], results[:few], strength=5), prior)  # too few: unchanged


def test_reliable_score_carries_the_ranking_and_the_noise_does_not() -> None:
    train = _gaussian_history(12, 40, {"good": 0.9, "noise": 0.0}, seed=4)
    test = _gaussian_history(1, 40, {"good": 0.9, "noise": 0.0}, seed=5).assign(dataset="new")
    auto = Auto().fit(train)
    weights = auto.explain(test).set_index("source")["weight"]
    assert weights["good"] > 0.5 and abs(weights["noise"]) < 0.1
    tau = stats.weightedtau(auto.predict(test), test["performance"]).statistic
    best_single = stats.weightedtau(test["score_good"], test["performance"]).statistic
    assert tau >= best_single - 0.05  # the combination adds the history prior to the best score


def test_spread_holds_68_percent_of_held_out_results() -> None:
    # data drawn from the model auto assumes: the inner-fold factor makes the interval nominal; 600 results give a
    # binomial standard error of 0.019, so 0.60-0.76 is four of them either side of 0.68
    train = _gaussian_history(10, 60, {"a": 0.6, "b": 0.3}, seed=6)
    auto = Auto().fit(train)
    inside = []
    for seed in range(10):
        test = _gaussian_history(1, 60, {"a": 0.6, "b": 0.3}, seed=100 + seed).assign(dataset=f"new{seed}")
        truth = (test["performance"] - test["performance"].mean()) / test["performance"].std(ddof=0)
        inside.extend(np.abs(truth - auto.predict(test)) <= auto.spread(test))
    assert 0.60 <= np.mean(inside) <= 0.76


def test_a_new_protocol_is_ranked_without_an_unmeasured_history() -> None:
    # training holds one protocol: no fold measured how its history carries to another, so only scores rank
    train = _gaussian_history(8, 30, {"good": 0.8}, seed=7)
    test = _gaussian_history(1, 30, {"good": 0.8}, seed=8, protocol="mine").assign(dataset="new")
    explained = Auto().fit(train).explain(test)
    assert list(explained["source"]) == ["good"]
    np.testing.assert_allclose(Auto().fit(train).predict(test),
                               stats.zscore(test["score_good"]) * explained["weight"].iloc[0], rtol=1e-10)


def test_other_protocols_history_is_weighed_by_cross_protocol_folds() -> None:
    train = pd.concat([_gaussian_history(6, 30, {"good": 0.8}, seed=9, protocol="p"),
                       _gaussian_history(6, 30, {"good": 0.8}, seed=10, protocol="q")
                       .assign(dataset=lambda f: f["dataset"] + "q")])
    test = _gaussian_history(1, 30, {"good": 0.8}, seed=11, protocol="mine").assign(dataset="new")
    auto = Auto().fit(train)
    assert np.isfinite(auto.intercepts_[auto.sources_.index("other-history")])  # measured between p and q
    assert "other-history" in set(auto.explain(test)["source"])


def test_guard_falls_back_only_when_auto_is_clearly_worse_and_says_which_case() -> None:
    """The best single source orders the pool only where the inner folds rank the combination below it by more than
    their standard error; `Guard.says` tells the user which case it is: worse, better, or alike."""
    auto = Auto()
    auto.sources_ = ["history", "other-history", "s"]
    auto.intercepts_ = np.array([0.5, np.nan, 0.1])  # no fold measured other-history
    auto.inner_taus_ = pd.DataFrame({"auto": [0.1, 0.2, 0.1, 0.2], "history": [0.5, 0.6, 0.5, 0.6],
                                     "other-history": 0.0, "s": 0.0})
    assert auto._guard() == "history" and auto.guard().verdict == "worse"  # worse by 0.4, standard error 0
    assert "ranked worse than history alone (weighted tau 0.15 against 0.55, standard error 0.00), which therefore " \
           "orders the pool" in auto.guard().says("history")
    auto.inner_taus_ = auto.inner_taus_.assign(history=-0.3, s=-0.2)
    # the unmeasured source's 0 (no opinion) is never the one compared: s is, and auto beats it by 0.35
    assert auto.guard().best == "s" and auto.guard().verdict == "better" and auto._guard() is None
    assert "ranked better than s alone" in auto.guard().says("s")
    auto.inner_taus_ = pd.DataFrame({"auto": [0.5, 0.2, 0.6, 0.1], "history": [0.2, 0.5, 0.3, 0.5],
                                     "other-history": 0.0, "s": 0.0})
    # worse by 0.05 on average, standard error of the difference std([.3, -.3, .3, -.4], ddof=1) / 2 = 0.1768
    guard = auto.guard()
    assert guard.verdict == "cannot tell" and auto._guard() is None
    assert guard.error == pytest.approx(np.std([0.3, -0.3, 0.3, -0.4], ddof=1) / 2, abs=1e-12)
    assert "the folds cannot tell them apart" in guard.says("history")


def test_a_fallback_is_a_posterior_in_z_units() -> None:
    """Where the guard falls back, the ranking is the source's own order, and the prediction is its z-scores over the
    pool times its predicted reliability, with the variance that reliability leaves: z units like the truth, so the
    spread means the same as the combination's."""
    train = _gaussian_history(8, 30, {"good": 0.8, "weak": 0.2}, seed=21)
    test = _gaussian_history(1, 30, {"good": 0.8, "weak": 0.2}, seed=22).assign(dataset="new")
    auto = Auto().fit(train)
    auto.fallback_ = "weak"  # as if the guard had fallen back to it
    explained = auto.explain(test).set_index("source")
    r = float(np.clip(explained.loc["weak", "reliability"], 0.05, 0.95))
    weak = test["score_weak"].to_numpy(dtype=float)
    np.testing.assert_allclose(auto.predict(test), (weak - weak.mean()) / weak.std() * r, rtol=1e-12)
    np.testing.assert_allclose(auto.spread(test), np.sqrt(1 - r * r) * auto.spread_factor_, rtol=1e-12)
    assert explained["weight"].to_dict() == {**dict.fromkeys(explained.index, 0.0), "weak": r}


def test_parameters_and_names() -> None:
    with pytest.raises(UserError, match=r"Auto: shrinkage=2 must be"):
        Auto(shrinkage=2).fit(_gaussian_history(3, 10, {"a": 0.5}, seed=12))
    assert isinstance(make_strategy("auto"), Auto) and make_strategy("auto").scores == ()
    assert make_strategy("auto+logme+lfc").scores == ("logme", "lfc")


def test_session_moves_the_reliabilities_from_four_results_and_says_so() -> None:
    train = _gaussian_history(8, 30, {"a": 0.5, "b": 0.5}, seed=13)
    test = _gaussian_history(1, 30, {"a": 0.5, "b": 0.5}, seed=14).assign(dataset="new")
    test["score_b"] = test["performance"]  # on this task b is the truth itself
    session = Auto().fit(train).session(test.drop(columns="performance"))
    truth = test["performance"].to_numpy()
    two = session.rank([0, 1], truth[:2], explain=True).reasons
    assert two is not None and two[0].startswith("2 result(s) observed, fewer than the 4 a correlation needs: "
                                                 "weights as the history predicts: ")
    picked = list(range(8))
    reason = session.rank(picked, truth[picked], explain=True).reasons[0]
    before, after = (float(v) for v in reason.split("b ")[1].split("reliability ")[1].split(")")[0].split(" -> "))
    assert reason.startswith("weights after your 8 result(s): ") and after > before  # eight results, r = 1 for b


def _interaction_pairs(synthetic_pairs, seed: int) -> pd.DataFrame:
    """Synthetic pairs whose results follow the model's family crossed with the dataset's group (opposite orders in
    two of the three groups), plus noise: each model's mean result says little, LR's family x group products much."""
    groups = ["natural", "specialized", "structured"]
    pairs = synthetic_pairs(n_models=40, n_datasets=18, seed=seed)
    pairs["group"] = [groups[int(d[1:]) % 3] for d in pairs["dataset"]]  # six datasets of each group
    families = sorted(pairs["family"].unique())
    base = np.random.default_rng(7).normal(size=len(families))
    signs = dict(zip(groups, (1, -1, 1), strict=True))
    effect = [signs[g] * base[families.index(f)] for f, g in zip(pairs["family"], pairs["group"], strict=True)]
    noise = np.random.default_rng(seed).normal(scale=0.3, size=len(pairs))
    return pairs.assign(performance=np.array(effect) + noise, protocol="p")


def test_lr_held_out_predictions_are_ridge_refits_without_them_and_fit_sparse_is_fit(synthetic_pairs) -> None:
    from sklearn.linear_model import Ridge

    from recommender.models.features import PairEncoder
    from recommender.models.linear import LinearRecommender
    from recommender.models.targets import normalise_target
    from recommender.normalise import ranking_groups

    pairs = _interaction_pairs(synthetic_pairs, seed=1)
    held = [np.flatnonzero(pairs["dataset"].isin(names).to_numpy()) for names in (["d0"], ["d3", "d7"])]
    lr = LinearRecommender(alpha=3.0)
    predicted = lr.held_out(pairs, held)
    assert not hasattr(lr, "encoder_")  # left unfitted
    # the same design (encoder fitted on every row), scikit-learn's dense Ridge fitted without the held-out rows;
    # LSQR stops at relative tolerances of 1e-14 (measured 1e-11 from the dense solve on SHiFT vision): 1e-8
    reference = LinearRecommender(alpha=3.0)
    reference.encoder_ = PairEncoder("d,m").fit(pairs)
    design = reference._design(reference.encoder_.transform(pairs))
    np.testing.assert_array_equal(reference._sparse_design(reference.encoder_.transform(pairs)).toarray(), design)
    target = normalise_target(pairs["performance"].to_numpy(), ranking_groups(pairs))
    for rows, values in zip(held, predicted, strict=True):
        keep = np.setdiff1d(np.arange(len(pairs)), rows)
        expected = Ridge(alpha=3.0).fit(design[keep], target[keep]).predict(design[rows])
        np.testing.assert_allclose(values, expected, atol=1e-8)
    # fit_sparse is fit, solved by LSQR; with weights, scikit-learn's Ridge given them as sample_weight
    np.testing.assert_allclose(LinearRecommender(alpha=3.0).fit_sparse(pairs).predict(pairs),
                               LinearRecommender(alpha=3.0).fit(pairs).predict(pairs), atol=1e-8)
    weights = np.random.default_rng(3).uniform(0, 4, size=len(pairs))
    expected = Ridge(alpha=3.0).fit(design, target, sample_weight=weights).predict(design)
    np.testing.assert_allclose(LinearRecommender(alpha=3.0).fit_sparse(pairs, weights).predict(pairs), expected,
                               atol=1e-8)
    for wrong in (weights[1:], np.where(np.arange(len(pairs)) == 0, -1.0, weights), np.zeros(len(pairs))):
        with pytest.raises(ValueError, match="sample_weight"):
            LinearRecommender().fit_sparse(pairs, wrong)


def test_history_lr_carries_a_ranking_that_moves_with_the_dataset(synthetic_pairs) -> None:
    """Where results depend on model facts crossed with dataset facts, the `history-lr` source is measured on the
    inner folds, carries the largest weight, ranks new datasets better than auto without it, and is kept exactly."""
    pairs = _interaction_pairs(synthetic_pairs, seed=2)
    new = ["d1", "d5", "d9", "d12"]  # every group
    train = pairs.loc[~pairs["dataset"].isin(new)].reset_index(drop=True)
    test = pairs.loc[pairs["dataset"].isin(new)].reset_index(drop=True)
    auto, without = Auto().fit(train), Auto(learned=False).fit(train)
    assert np.isfinite(auto.intercepts_[auto.sources_.index("history-lr")])

    def tau(est: Auto) -> float:
        predicted = est.predict(test.drop(columns="performance"))
        return float(np.mean([stats.weightedtau(predicted[rows], test["performance"].to_numpy()[rows]).statistic
                              for rows in test.groupby("dataset").indices.values()]))

    assert tau(auto) > tau(without) + 0.2
    weights = auto.explain(test.drop(columns="performance")).groupby("source")["weight"].mean()
    assert weights.idxmax() == "history-lr"
    # a pool of names alone (`rank`'s): its facts unknown, LR still ranks the models it learned
    bare = auto.explain(test[["model", "dataset", "protocol"]])
    assert "history-lr" in set(bare["source"])
    values, tables = auto.get_state()
    kept = Auto.from_state(values, tables)
    np.testing.assert_array_equal(kept.predict(test), auto.predict(test))
    damaged = tables["learned"].iloc[1:]
    with pytest.raises(ValueError, match="learned weights of p"):
        Auto.from_state(values, {**tables, "learned": damaged})
    entry = values["learned"][0]
    short = {**values, "learned": [{**entry, "params": {k: v for k, v in entry["params"].items() if k != "alpha"}}]}
    with pytest.raises(UserError, match="must hold exactly the lr hyper-parameters"):
        Auto.from_state(short, tables)


def test_a_session_refits_history_lr_with_the_datasets_weighted_as_the_results_agree(synthetic_pairs) -> None:
    """From four results on, `history-lr` in a session is the LR refitted with each training pair weighted as the
    similarity search weighs its dataset (mean weight 1): scikit-learn's Ridge given those weights, on the same
    design; before that the fitted one; from a kept fit the same."""
    from sklearn.linear_model import Ridge

    from recommender.models.features import PairEncoder
    from recommender.models.linear import LinearRecommender
    from recommender.models.targets import normalise_target
    from recommender.normalise import ranking_groups

    pairs = _interaction_pairs(synthetic_pairs, seed=2)
    train = pairs.loc[pairs["dataset"] != "d5"].reset_index(drop=True)
    test = pairs.loc[pairs["dataset"] == "d5"].reset_index(drop=True)
    candidates, truth = test.drop(columns="performance"), test["performance"].to_numpy()
    auto = Auto().fit(train)
    assert "p" in auto.learned_
    session = auto.session(candidates)
    picks = [0, 3, 7, 11, 20]
    observed = candidates.loc[picks, ["model", "dataset"]].assign(performance=truth[picks])
    weights, _ = session.similar.weights(picks, truth[picks])
    assert np.ptp(weights) > 0
    by_dataset = dict(zip(session.similar.names, weights * len(weights), strict=True))
    reference = LinearRecommender()
    reference.encoder_ = PairEncoder("d,m").fit(train)
    ridge = Ridge(alpha=reference.alpha).fit(
        reference._design(reference.encoder_.transform(train)), normalise_target(train["performance"].to_numpy(),
                                                                                ranking_groups(train)),
        sample_weight=train["dataset"].map(by_dataset).to_numpy())
    moved = {"history-lr": ridge.predict(reference._design(reference.encoder_.transform(candidates)))}
    expected = auto.assess(candidates, observed=observed, moved=moved).score
    # LSQR against the dense solve (1e-11 on SHiFT vision), passed through the Gaussian combination: 1e-7
    np.testing.assert_allclose(session.rank(picks, truth[picks]).score, expected, atol=1e-7)
    assert not np.allclose(expected, auto.assess(candidates, observed=observed).score, atol=1e-4)  # it moved
    # one result: equal weights, the fitted LR; three: the weights move (the mean prior, where kept), LR waits for
    # the fourth, as the reliabilities do
    np.testing.assert_array_equal(session.rank([0], truth[:1]).score,
                                  auto.assess(candidates, observed=observed.iloc[:1]).score)
    three = picks[:3]
    assert not session.mean  # here the inner folds chose LR alone: nothing else is re-weighted
    np.testing.assert_array_equal(session.rank(three, truth[three]).score,
                                  auto.assess(candidates, observed=observed.iloc[:3]).score)
    reason = session.rank(three, truth[three], explain=True).reasons[0]
    assert reason.endswith("the history under your protocol: LR is refitted with its 17 training datasets weighted "
                           "by your results once 4 are observed")
    # a kept fit holds the facts the refit reads and refits the same
    kept = Auto.from_state(*auto.get_state())
    np.testing.assert_array_equal(kept.session(candidates).rank(picks, truth[picks]).score,
                                  session.rank(picks, truth[picks]).score)
    values, tables = auto.get_state()
    with pytest.raises(ValueError, match="and the facts"):
        Auto.from_state(values, {**tables, "history": tables["history"].drop(columns="family")})


def test_a_protocol_named_measures_the_sources_on_its_own_datasets() -> None:
    """Named the protocol of the tasks to rank, the inner folds hold out its datasets alone (each under every
    protocol) and measure the sources there: a score that tracks the truth under A and not under B earns A's
    reliability, not the mixture's; with fewer than MIN_PROTOCOL_DATASETS datasets under it, every dataset."""
    from recommender.models.auto import MIN_PROTOCOL_DATASETS

    def named(pairs: pd.DataFrame, prefix: str) -> pd.DataFrame:
        return pairs.assign(dataset=prefix + pairs["dataset"])

    a = named(_gaussian_history(6, 30, {"s": 0.8}, seed=21, protocol="A"), "a")
    b = named(_gaussian_history(14, 30, {"s": 0.0}, seed=22, protocol="B"), "b")
    train = pd.concat([a, b.assign(dataset=b["dataset"].where(b["dataset"] != "bd0", "ad0"))], ignore_index=True)
    mine, anyone = Auto(protocol="A").fit(train), Auto().fit(train)
    s = mine.sources_.index("s")
    # one record per held-out A group; ad0's B group (the same dataset under B) is left out of training, not tested;
    # without a protocol, every group of the 19 datasets (ad0 under both)
    assert len(mine.inner_taus_) == 6 and len(anyone.inner_taus_) == 19 + 1
    assert mine.intercepts_[s] > anyone.intercepts_[s] + 0.2
    assert mine.measured_on == "sources measured on the 6 datasets under A"
    assert anyone.measured_on == "sources measured on the datasets of every protocol"
    few = train.loc[~train["dataset"].isin(["ad1", "ad2"])].reset_index(drop=True)
    assert few.loc[few["protocol"] == "A", "dataset"].nunique() < MIN_PROTOCOL_DATASETS
    too_few = Auto(protocol="A").fit(few)
    np.testing.assert_array_equal(too_few.intercepts_, Auto().fit(few).intercepts_)
    assert too_few.measured_on == "sources measured on the datasets of every protocol (fewer than 5 under A)"


def test_the_history_prior_is_the_mean_unless_another_beats_it_by_more_than_the_folds_noise() -> None:
    from recommender.models.auto import _chosen

    mean, lr, both = ("history",), ("history-lr",), ("history", "history-lr")
    base = pd.Series([0.2, 0.5, 0.3, 0.6])
    # LR 0.02 better on average, but one fold 0.06 worse: the standard error of the difference, 0.027, exceeds the gain
    noisy = {(mean, 0.1): base, (mean, 1.0): base - 0.1, (lr, 0.4): base + [0.04, 0.04, 0.06, -0.06],
             (both, 1.0): base - 0.01}
    assert _chosen(noisy) == (mean, 0.1)
    # LR 0.03 better on every fold: beyond any noise; of two priors that pass, the better mean
    clear = {**noisy, (lr, 0.4): base + 0.03, (both, 1.0): base + 0.02}
    assert _chosen(clear) == (lr, 0.4)
    # equal means within a prior: the larger shrinkage
    assert _chosen({(mean, 0.1): base, (mean, 0.7): base}) == (mean, 0.7)
