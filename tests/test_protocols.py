"""Several protocols in one pair table (issue 11): the encoder's p block, ranking within (dataset, protocol), the
cross-protocol split, the choice between own and all histories, and `rank` saying which evidence ordered it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import weightedtau

from recommender.errors import UserError
from recommender.evaluation import evaluate, make_folds, make_strategy
from recommender.evaluation.checks import check_pairs
from recommender.models.features import PairEncoder
from recommender.models.rankers import SourceChoice
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
    assert est.choices_["own"] == "own"
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


P_MODELS = [f"m{i}" for i in range(6)]
P_DATASETS = {"d0": 1000.0, "d1": 2000.0, "d2": 400.0, "d3": 800.0}  # full training splits


@pytest.fixture(scope="module")
def p_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of 6 models x 4 image datasets under two protocols whose model rankings differ: `a` (LoRA, half of
    each split) and `b` (full fine-tuning on a fixed 100 examples), with model, dataset and protocol facts."""
    from recommender.history import open_store
    from recommender.history.ingest import ingest_file

    folder = tmp_path_factory.mktemp("pstore")
    rng = np.random.default_rng(5)
    quality = np.linspace(0, 1, len(P_MODELS))
    jobs = pd.DataFrame([{"model": m, "dataset": d, "metric": "top1", "protocol": p,
                          "value": round(50 + 10 * (q if p == "a" else 1 - q) + rng.normal(0, 1), 2)}
                         for p in "ab" for d in P_DATASETS for m, q in zip(P_MODELS, quality, strict=True)])
    tables = {
        "models": pd.DataFrame({"model": P_MODELS, "family": ["vit", "resnet"] * 3, "params_m": [5.0, 11.7, 22.0,
                                                                                                  25.6, 86.0, 44.5]}),
        "datasets": pd.DataFrame({"dataset": list(P_DATASETS), "group": ["natural", "structured"] * 2,
                                  "modality": "image", "examples": list(P_DATASETS.values()), "classes": 10.0}),
        "protocols": pd.DataFrame({"protocol": ["a", "b"], "history": ["mine", "theirs"], "train_fraction": [0.5, None],
                                   "examples": [None, 100.0], "epochs": [4.0, 30.0], "lr_min": [1e-3, 0.1],
                                   "lr_max": [1e-2, 0.1], "peft": ["lora", "full"], "lora_r": [8.0, None]}),
        "jobs": jobs}
    url = f"sqlite:///{folder / 'history.db'}"
    store = open_store(url, create=True)
    for kind, frame in tables.items():
        frame.to_csv(folder / f"{kind}.csv", index=False)
        ingest_file(store, folder / f"{kind}.csv", kind=kind)
    return url


def _recommend_json(capsys: pytest.CaptureFixture, *argv: str) -> pd.DataFrame:
    from recommender.cli import main

    assert main(["recommend", *argv, "--top-k", "6", "--json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out)).set_index("model")


def _hand_pairs(dataset: str, examples: float, group: str, protocol: dict[str, object]) -> pd.DataFrame:
    """The 6 models on one dataset with the facts written out by hand (as the store was given them)."""
    return pd.DataFrame({"model": P_MODELS, "family": ["vit", "resnet"] * 3,
                         "params_m": [5.0, 11.7, 22.0, 25.6, 86.0, 44.5], "pretrain_dataset": None, "gmacs": np.nan,
                         "input_size": np.nan, "imagenet_top1": np.nan, "dataset": dataset, "group": group,
                         "modality": "image", "examples": examples, "classes": 10.0, "p_examples": examples,
                         **protocol})


PROTOCOL_A = {"p_history": "mine", "p_peft": "lora", "p_optimizer": None, "p_epochs": 4.0, "p_lr_min": 1e-3,
              "p_lr_max": 1e-2, "p_lora_r": 8.0}
PROTOCOL_B = {"p_history": "theirs", "p_peft": "full", "p_optimizer": None, "p_epochs": 30.0, "p_lr_min": 0.1,
              "p_lr_max": 0.1, "p_lora_r": np.nan}


def test_recommend_with_a_p_featured_recommender_reads_the_named_protocols_facts(p_store, tmp_path, capsys):
    from recommender.cli import main
    from recommender.models.factory import load_recommender

    folder = str(tmp_path / "lr_p")
    assert main(["train", "--recommender", "lr", "--features", "d,m,p", "--protocol", "a,b", "--db", p_store,
                 "--out", folder]) == 0
    est = load_recommender(folder)
    capsys.readouterr()
    # a new dataset (no observed results to update the prediction) under a (half its 3000: 1500) and under b
    # (a fixed 100)
    new = ("--dataset", "new", "--examples", "3000", "--classes", "10", "--group", "natural", "--modality", "image")
    cases = [((*new, "--protocol", "a"), _hand_pairs("new", 1500.0, "natural", PROTOCOL_A)),
             ((*new, "--protocol", "b"), _hand_pairs("new", 100.0, "natural", PROTOCOL_B))]
    got = []
    for argv, hand in cases:
        table = _recommend_json(capsys, "--model", folder, "--db", p_store, *argv)
        expected = pd.Series(est.predict(hand), index=P_MODELS)
        # the same encoder and ridge on the same numbers: equal up to float summation order
        np.testing.assert_allclose(table.loc[P_MODELS, "predicted_z"], expected, rtol=0, atol=1e-9)
        got.append(table.loc[P_MODELS, "predicted_z"].to_numpy())
    # the protocol's facts reach the ranking: a and b reverse the models, and the recommender learned it
    assert weightedtau(got[0], got[1]).statistic < 0
    # several training protocols and none named: refused; an unknown one: one line listing the known ones
    assert main(["recommend", "--model", folder, "--db", p_store, "--dataset", "d1"]) == 2
    assert "trained on several protocols (a, b): name the one you fine-tune under with --protocol" in \
        capsys.readouterr().err
    assert main(["recommend", "--model", folder, "--db", p_store, "--dataset", "d1", "--protocol", "c"]) == 2
    err = capsys.readouterr().err
    assert "unknown protocol 'c'; the store knows a, b" in err and len(err.strip().splitlines()) == 1


def test_protocol_facts_of_a_stored_dataset_are_the_pair_tables(p_store):
    """On a dataset the store holds under the protocol, the candidates get the pair table's examples (half of d1's
    2000 under a), not the train fraction applied again to a count that is already the protocol's."""
    from recommender.history import open_store
    from recommender.models.recommend import with_protocol

    store = open_store(p_store)
    known = store.pair_table("a")
    candidates = known.loc[known["dataset"] == "d1", ["model", "dataset", "examples"]]
    filled = with_protocol(candidates, store, "a", known)
    assert filled["p_examples"].tolist() == [1000.0] * 6 == filled["examples"].tolist()
    assert filled[list(PROTOCOL_A)].iloc[0].to_dict() == PROTOCOL_A | {"p_optimizer": None}
    unknown = with_protocol(candidates.assign(dataset="other", examples=2001.0), store, "a", known)
    assert unknown["p_examples"].tolist() == [1000.0] * 6  # floor(0.5 * 2001)


def test_rank_pool_with_a_p_featured_recommender_gets_its_training_protocols_facts(p_store, tmp_path):
    import warnings

    from recommender.history import open_store
    from recommender.models import make_recommender
    from recommender.zoo.rank import rank_pool, with_protocol_facts

    store = open_store(p_store)
    pairs = store.pair_table("b")
    est = make_recommender("lr", features="d,m,p,logme").fit(pairs.assign(score_logme=0.0))
    est.training_["protocol"] = "b"
    pool = _hand_pairs("mine", 5000.0, np.nan, {}).drop(columns="p_examples").assign(
        score_logme=np.linspace(1, 2, 6))
    with pytest.raises(UserError, match="pair table lacks column"):
        est.predict(pool)
    filled = with_protocol_facts(pool, store, est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the new dataset's missing group: warned elsewhere
        ranked, evidence = rank_pool(filled, ["logme"], est)
    hand = _hand_pairs("mine", 100.0, np.nan, PROTOCOL_B).assign(score_logme=np.linspace(1, 2, 6))
    np.testing.assert_allclose(ranked.set_index("model").loc[P_MODELS, "predicted"], est.predict(hand), atol=1e-9)
    assert evidence.endswith("as features, for protocol b")


def test_stackcv_chooses_the_rank_transform_on_inner_folds_when_a_score_has_outliers():
    """A score that orders the models like their performance but puts one model 1000 units away: z-scored, the
    outlier flattens the others to one value; ranked, the order survives. Chosen on the training datasets alone."""
    from recommender.models.rankers import ALPHAS, MeanNormalisedPerformance, Stacked

    rng = np.random.default_rng(2)
    rows = []
    for d in range(6):
        truth = rng.permutation(10).astype(float)  # a new model order on every dataset: the prior cannot help
        score = truth + rng.normal(0, 0.3, 10)
        score[np.argmin(truth)] = -1000.0  # the worst model, far out
        rows += [{"model": f"m{m}", "dataset": f"d{d}", "performance": truth[m], "score_s": score[m]}
                 for m in range(10)]
    train = pd.DataFrame(rows)
    test, rest = train[train["dataset"] == "d5"], train[train["dataset"] != "d5"]
    chosen = Stacked(MeanNormalisedPerformance(), ("s",), alpha=None).fit(rest)
    assert chosen.transform_ == "rank" and chosen.alpha_ in ALPHAS
    fixed = Stacked(MeanNormalisedPerformance(), ("s",)).fit(rest)  # z-scores, alpha 1
    tau = {name: weightedtau(est.predict(test.drop(columns="performance")), test["performance"]).statistic
           for name, est in (("chosen", chosen), ("fixed", fixed))}
    assert tau["chosen"] > 0.9 > tau["fixed"]
