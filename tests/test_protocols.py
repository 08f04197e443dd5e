"""Several protocols in one pair table (issue 11): the encoder's p block, ranking within (dataset, protocol), the
cross-protocol split, the choice between own and all histories, and `rank` saying which evidence ordered it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import weightedtau

from recommender.errors import UserError
from recommender.evaluation import evaluate, make_folds, make_strategy
from recommender.evaluation.checks import check_pairs
from recommender.evaluation.sources import SourceChoice
from recommender.models.features import PairEncoder
from recommender.models.targets import normalise_target
from recommender.normalise import ranking_groups

P_COLUMNS = {"p_history": None, "p_peft": None, "p_optimizer": None, "p_examples": np.nan, "p_epochs": np.nan,
             "p_lr_min": np.nan, "p_lr_max": np.nan, "p_lora_r": np.nan}


def test_p_block_encodes_protocol_facts_from_a_hand_made_table():
    table = pd.DataFrame({
        "p_history": ["shift", "tg", "tg"], "p_peft": [None, "full", "lora"], "p_optimizer": [None, None, None],
        "p_examples": [800.0, 2142.0, 2142.0], "p_epochs": [25.0, 30.0, 4.0],
        "p_lr_min": [0.01, 1e-4, 1e-3], "p_lr_max": [0.1, 1e-4, 1e-3], "p_lora_r": [np.nan, np.nan, 8.0]})
    enc = PairEncoder("p").fit(table)
    Z = pd.DataFrame(enc.transform(table), columns=enc.get_feature_names_out())
    assert Z["onehot__p_history_tg"].tolist() == [0, 1, 1]
    assert Z["onehot__p_peft_lora"].tolist() == [0, 0, 1] and Z["onehot__p_peft_<missing>"].tolist() == [1, 0, 0]

    def standard(v):  # mean 0, population std 1 over the fitted rows, as StandardScaler
        v = np.asarray(v, dtype=float)
        return (v - v.mean()) / v.std()

    # learning rates are log10-scaled (1e-4 and 1e-3 one unit apart), sizes log1p-scaled; both then standardised
    np.testing.assert_allclose(Z["scalar__value__p_lr_min"], standard(np.log10([0.01, 1e-4, 1e-3])), atol=1e-12)
    np.testing.assert_allclose(Z["scalar__value__p_examples"], standard(np.log1p([800, 2142, 2142])), atol=1e-12)
    np.testing.assert_allclose(Z["scalar__value__p_epochs"], standard(np.log1p([25, 30, 4])), atol=1e-12)
    # one known LoRA rank: the others take its (mean-imputed) value, so the column is constant 0, flagged missing
    np.testing.assert_allclose(Z["scalar__value__p_lora_r"], 0.0, atol=1e-12)
    assert Z["scalar__missing__missingindicator_p_lora_r"].tolist() == [1, 1, 0]
    with pytest.raises(UserError, match="p_lr_min must hold positive"):
        enc.transform(table.assign(p_lr_min=0.0))


def test_targets_and_scores_are_normalised_within_dataset_and_protocol():
    frame = pd.DataFrame({"dataset": ["a"] * 4, "protocol": ["x", "x", "y", "y"], "model": list("mnmn"),
                          "score_s": [1.0, 3.0, 10.0, 30.0]})
    y = np.array([0.2, 0.4, 0.9, 0.5])
    # closed form: two values per group z-score to -1 and +1 (population std)
    np.testing.assert_allclose(normalise_target(y, ranking_groups(frame)), [-1, 1, 1, -1], atol=1e-12)
    enc = PairEncoder("s").fit(frame)
    np.testing.assert_allclose(enc.transform(frame)[:, 0], [-1, 1, -1, 1], atol=1e-12)
    # without a protocol column the four values form one group: mean 0.5, std sqrt(0.065)
    np.testing.assert_allclose(normalise_target(y, ranking_groups(frame.drop(columns="protocol"))),
                               (y - 0.5) / np.sqrt(0.065), atol=1e-12)


def test_check_pairs_keeps_one_pair_per_protocol_and_flags_broken_runs_per_protocol():
    pairs = pd.DataFrame({"model": ["m", "m", "n", "n"], "dataset": "a", "protocol": ["x", "y", "x", "y"],
                          "performance": [50.0, 0.3, 40.0, 0.2]})
    kept, issues = check_pairs(pairs)
    assert len(kept) == 4 and issues.empty  # 0.3 is not broken beside 50: it is another protocol's scale
    with pytest.raises(UserError, match="appears twice under one protocol"):
        check_pairs(pd.concat([pairs, pairs.iloc[:1]]))


def _history(seed: int = 0) -> pd.DataFrame:
    """Protocol A on datasets d0-d3 and protocol B on d2-d5, 8 models; performance = model quality + noise."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(0, 1, 8)
    rows = []
    for protocol, datasets in (("A", range(0, 4)), ("B", range(2, 6))):
        for d in datasets:
            for m in range(8):
                rows.append({"model": f"m{m}", "dataset": f"d{d}", "protocol": protocol,
                             "performance": 50 + 10 * quality[m] + rng.normal(0, 1)})
    facts = ["family", "pretrain_dataset", "params_m", "gmacs", "input_size", "imagenet_top1", "group", "modality",
             "examples", "classes"]  # unknown: the learned strategies learn from the ids
    return pd.DataFrame(rows).reindex(columns=["model", "dataset", "protocol", "performance", *facts])


def test_cross_protocol_split_marks_seen_datasets_and_trains_on_no_target_pair():
    pairs = _history()
    folds = make_folds(pairs, "cross-protocol", protocols=["B"], train_protocols=["A"])
    assert [f.name for f in folds] == ["d2", "d3", "d4", "d5"]
    assert all(f.seen == frozenset({"d2", "d3"}) for f in folds)
    assert all(set(f.train["protocol"]) == {"A"} and set(f.test["protocol"]) == {"B"} for f in folds)
    with pytest.raises(UserError, match="both trained on and tested"):
        make_folds(pairs, "cross-protocol", protocols=["A"], train_protocols=["A"])
    # poisoning: change every target-protocol performance; no training-side strategy may move its ranking
    strategies = {s: make_strategy(s, (1, 3)) for s in ("mean-perf", "history-accuracy", "lr", "auto:lr")}
    poisoned = pairs.assign(performance=np.where(pairs["protocol"] == "B", -pairs["performance"], pairs["performance"]))
    before = evaluate(folds, strategies, (1, 3)).predictions
    after = evaluate(make_folds(poisoned, "cross-protocol", protocols=["B"], train_protocols=["A"]), strategies,
                     (1, 3)).predictions
    np.testing.assert_array_equal(before["prediction"].to_numpy(), after["prediction"].to_numpy())
    ev = evaluate(folds, {k: strategies[k] for k in ("mean-perf", "history-accuracy")}, (1, 3))
    summary = ev.summary()
    tau = summary[summary["measure"] == "weighted_tau"].set_index(["strategy", "seen"])["n"]
    assert tau.to_dict() == {("mean-perf", True): 2, ("mean-perf", False): 2, ("history-accuracy", True): 2}
    # the reference ranks only datasets training holds; the unseen ones are listed as issues
    assert (ev.issues["issue"] == "no prediction").sum() == 2


def test_loo_with_extra_history_tests_only_the_target_protocol_and_holds_out_the_dataset_everywhere():
    folds = make_folds(_history(), "loo", protocols=["B"])
    assert [f.name for f in folds] == ["d2", "d3", "d4", "d5"]
    for f in folds:
        assert set(f.test["protocol"]) == {"B"}
        assert f.name not in set(f.train["dataset"])  # not even under protocol A


def test_source_choice_trains_on_its_own_protocol_when_the_other_history_is_anticorrelated_noise():
    rng = np.random.default_rng(1)
    quality = rng.normal(size=12)
    rows = []
    for d in range(5):  # own protocol: a stable model ranking
        rows += [{"model": f"m{m}", "dataset": f"own{d}", "protocol": "own",
                  "performance": 60 + 5 * quality[m] + rng.normal(0, 0.5)} for m in range(12)]
    for d in range(15):  # another history, three times larger: the reverse ranking plus noise
        rows += [{"model": f"m{m}", "dataset": f"other{d}", "protocol": "other",
                  "performance": 60 - 5 * quality[m] + rng.normal(0, 2)} for m in range(12)]
    train = pd.DataFrame(rows)
    test = pd.DataFrame({"model": [f"m{m}" for m in range(12)], "dataset": "new", "protocol": "own"})
    est = SourceChoice(make_strategy("mean-perf")).fit(train)
    pred = est.predict(test)
    assert est.choices_ == {"own": "own"}
    assert weightedtau(pred, quality).statistic > 0.8
    # on everything, the larger anti-correlated history wins and the ranking is reversed: the choice mattered
    pooled = make_strategy("mean-perf").fit(train).predict(test)
    assert weightedtau(pooled, quality).statistic < 0


def test_rank_says_which_evidence_ordered_the_pool():
    import warnings

    from recommender.models import make_recommender
    from recommender.zoo.rank import Stacking, rank_pool

    # a d,m recommender that learned a > b > c from a toy history
    history = pd.DataFrame({"model": list("abc") * 2, "dataset": ["h1"] * 3 + ["h2"] * 3,
                            "performance": [3.0, 2.0, 1.0] * 2})
    history = history.reindex(columns=[*history.columns, "family", "pretrain_dataset", "params_m", "gmacs",
                                       "input_size", "imagenet_top1", "group", "modality", "examples", "classes"])
    est = make_recommender("lr", features="d,m").fit(history)
    est.training_["protocol"] = "toy"
    pool = history.iloc[:3].drop(columns="performance").assign(dataset="t", score_logme=[-1.0, 0.0, 5.0])
    ranked, evidence = rank_pool(pool, ["logme"], None)
    assert ranked["model"].tolist() == ["c", "b", "a"] and evidence == ("ordered by the computed score logme alone "
                                                                         "(no --recommender)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the new dataset has no facts: warned elsewhere
        ranked, evidence = rank_pool(pool, ["logme"], est, Stacking({"prior": 1.0, "logme": 2.0}, "test weights"))
    pred = est.predict(pool)
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731 -- population z-score over the pool
    expected = z(pred) + 2.0 * z(pool["score_logme"].to_numpy())
    assert ranked["model"].tolist() == list(pool["model"].to_numpy()[np.argsort(-expected)])
    np.testing.assert_allclose(ranked.set_index("model").loc[list("abc"), "combined"], expected, atol=1e-12)
    assert {"predicted", "score_logme", "combined"} <= set(ranked.columns)  # each model's scores beside it
    assert evidence == ("ordered by lr (d,m) trained on history toy, stacked with the computed score(s) logme "
                        "(2.00) against the prediction (1.00); test weights")
