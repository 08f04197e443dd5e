"""The store on the bundled real history: counts, pair table and aggregation checked against the raw files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.contracts import PAIR_COLUMNS, PROTOCOL_COLUMNS
from recommender.errors import UserError
from recommender.history import open_store
from recommender.history.aggregate import best_over_hparams
from recommender.history.bundled import HISTORY_DIR, load_bundled

CONTRACT_COLUMNS = ["model", "dataset", "performance", "selected_by", "family", "pretrain_dataset", "params_m",
                    "gmacs", "input_size", "imagenet_top1", "examples", "classes", "modality", "group"]


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # the files the bundled copies were made from


def raw(name: str) -> pd.DataFrame:
    """A bundled file read directly with pandas (the independent side of each check)."""
    return pd.read_csv(HISTORY_DIR / name)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A fresh SQLite store with the whole bundled history loaded (once for this module)."""
    store = open_store(str(tmp_path_factory.mktemp("store") / "history.db"), create=True)
    load_bundled(store)
    return store


@pytest.fixture(scope="module")
def vision() -> pd.DataFrame:
    """SHiFT vision jobs under the VTAB-1k protocol, from the raw file."""
    frame = raw("history_shift_vision.csv.gz")
    return frame[(frame["train_slice"] == ":800") & (frame["epochs"] == 25)]


def test_every_bundled_row_is_stored(store) -> None:
    """Jobs = rows of the seven histories, less PARC's 10 rows at -1 (no result); features and scores likewise."""
    job_files = ["history_shift_vision.csv.gz", "history_shift_text.csv.gz", "history_parc.csv.gz",
                 "history_small_zoos_sfda_emms.csv.gz", "history_timm_imagenet_variants.csv.gz",
                 "history_transfergraph_image.csv.gz", "history_transfergraph_text.csv.gz"]
    parc_missing = int((raw("history_parc.csv.gz")["value"] == -1).sum())
    assert parc_missing == 10
    counts = store.counts()
    assert counts["jobs"] == sum(len(raw(f)) for f in job_files) - parc_missing
    transfergraph = sum(len(pd.read_csv(SHARED / f"history_transfergraph_{m}.csv")) if SHARED.is_dir() else
                        len(raw(f"history_transfergraph_{m}.csv.gz")) for m in ("image", "text"))
    assert counts["jobs"] == 35_576 + transfergraph == 35_576 + 2_254 + 3_189  # before TransferGraph: 35,576
    assert counts["scores"] == len(raw("scores_logme_hscore.csv.gz"))
    model_ids = set().union(*(raw(f)["model"] for f in ("models_hf.csv.gz", "models_timm.csv.gz",
                                                          "models_parc.csv.gz", "history_small_zoos_sfda_emms.csv.gz")))
    assert counts["models"] == len(model_ids)
    assert store.schema_version() == 3
    assert counts["dataset_aliases"] == len(raw("dataset_aliases.csv"))


def test_loading_again_adds_nothing(store) -> None:
    """`history init` twice: the natural keys make the second load a no-op."""
    before = store.counts()
    assert load_bundled(store)["added"].sum() == 0
    assert store.counts() == before


def test_pair_table_has_the_contract_columns(store) -> None:
    """docs/contracts.md columns in order, then examples_full and the requested scores."""
    table = store.pair_table("vtab1k", modality="image", scores=("logme", "hscore_reg"))
    assert list(PAIR_COLUMNS) == CONTRACT_COLUMNS
    assert list(table.columns) == [*CONTRACT_COLUMNS, "examples_full", "protocol", *PROTOCOL_COLUMNS,
                                   "score_logme", "score_hscore_reg"]
    assert set(table["protocol"]) == {"vtab1k"} and set(table["p_history"]) == {"shift"}
    assert len(table) == 5088  # SOURCES.md: 5,088 (model, dataset) pairs of SHiFT vision under VTAB-1k
    assert set(table["selected_by"]) == {"val"}  # SHiFT logs validation accuracy on every job
    assert (table["examples"] == 800).all()


def test_select_test_is_the_best_test_value(store, vision: pd.DataFrame) -> None:
    """select="test" equals the raw maximum over learning rates and repeats, exactly (floats stored as is)."""
    expected = vision.groupby(["model", "dataset"])["value"].max()
    table = store.pair_table("vtab1k", modality="image", select="test").set_index(["model", "dataset"])
    assert (table["selected_by"] == "test").all()
    pd.testing.assert_series_equal(table["performance"].sort_index(), expected.sort_index(), check_names=False)


def test_select_val_averages_the_tied_best_validation_runs(store, vision: pd.DataFrame) -> None:
    """select="val": mean test value over the jobs at the pair's highest validation accuracy (loop, not groupby)."""
    expected = {}
    for (model, dataset), jobs in vision.groupby(["model", "dataset"]):
        best = jobs["val_accuracy"].max()
        expected[(model, dataset)] = float(np.mean([t for t, v in zip(jobs["value"], jobs["val_accuracy"], strict=True)
                                                    if v == best]))
    table = store.pair_table("vtab1k", modality="image").set_index(["model", "dataset"])["performance"]
    got = table.loc[list(expected)].to_numpy()
    np.testing.assert_allclose(got, list(expected.values()), rtol=1e-12)  # means: a few ulp of summation order


def test_pair_features_come_from_the_feature_files(store) -> None:
    """A SHiFT model's features from models_hf.csv; a dataset's from datasets.csv; scores from the score file."""
    hf = raw("models_hf.csv.gz").set_index("model").loc["google/vit-base-patch16-224"]
    ds = raw("datasets.csv.gz").set_index("dataset").loc["dtd"]
    table = store.pair_table("vtab1k", scores=("logme",)).set_index(["model", "dataset"])
    row = table.loc[("google/vit-base-patch16-224", "dtd")]
    assert row["params_m"] == hf["param_count"] and row["input_size"] == hf["img_size"]
    assert row["family"] == hf["family"] and row["pretrain_dataset"] == hf["pretrain_dataset"]
    assert row["imagenet_top1"] == pytest.approx(100 * hf["reported_accuracy_on_pretrain_dataset"], rel=1e-12)
    assert (row["classes"], row["examples_full"], row["group"]) == (ds["num_classes"], ds["num_train_full"],
                                                                   ds["group"])
    scores = raw("scores_logme_hscore.csv.gz")
    logme = scores[(scores["model"] == "google/vit-base-patch16-224") & (scores["dataset"] == "dtd")
                   & (scores["metric"] == "logme")]["value"]
    assert row["score_logme"] == logme.item()
    repeated = scores[(scores["model"] == "meame2010/rare-puppers") & (scores["dataset"] == "dtd")
                      & (scores["metric"] == "logme")]["value"]
    stored = store.score_table(["logme"]).set_index(["model", "dataset"]).at[("meame2010/rare-puppers", "dtd"),
                                                                             "score_logme"]
    assert len(repeated) == 2 and stored == repeated.iloc[-1]  # a repeat in one file: its last row, not a mean
    latest = store.latest_scores(["logme"])
    one = latest[(latest["model"] == "meame2010/rare-puppers") & (latest["dataset"] == "dtd")]
    assert one["value"].tolist() == [repeated.iloc[-1]]  # the same one row, in long format with its seconds
    assert not latest.duplicated(["model", "dataset", "score"]).any()
    assert len(latest) == len(store.score_table(["logme"]).dropna(subset=["score_logme"]))


def test_modality_filter_and_text_pairs(store) -> None:
    """Text pairs under VTAB-1k come only from SHiFT text, and every one is a text dataset."""
    text = raw("history_shift_text.csv.gz")
    text = text[(text["train_slice"] == ":800") & (text["epochs"] == 25)]
    table = store.pair_table("vtab1k", modality="text")
    assert len(table) == len(text[["model", "dataset"]].drop_duplicates())
    assert set(table["modality"]) == {"text"}


def test_performance_matrix_of_timm_evaluations(store) -> None:
    """imagenet-eval: models x 8 test sets of top-1 (the default: ties in count go alphabetical), max over sizes."""
    timm = raw("history_timm_imagenet_variants.csv.gz")
    top1 = timm[timm["metric"] == "top1"]
    expected = top1.groupby(["model", "dataset"])["value"].max().unstack()
    matrix = store.performance_matrix("imagenet-eval")
    assert matrix.shape == (timm["model"].nunique(), 8)
    pd.testing.assert_frame_equal(matrix.sort_index(axis=0).sort_index(axis=1),
                                  expected.sort_index(axis=0).sort_index(axis=1), check_names=False)


def test_interrupted_init_leaves_an_empty_store(tmp_path, monkeypatch) -> None:
    """`history init` is one transaction: a failure while writing the last file keeps none of the others."""
    from recommender.history.writer import Writer

    store = open_store(str(tmp_path / "history.db"), create=True)
    real = Writer._write_keyed

    def interrupted(self, conn, kind, *args):
        if kind == "scores":
            raise KeyboardInterrupt
        return real(self, conn, kind, *args)

    monkeypatch.setattr(Writer, "_write_keyed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_bundled(store)
    assert set(store.counts().values()) == {0}


def test_unknown_protocol_and_score_are_clear_errors(store) -> None:
    """A protocol or score that is not stored names the ones that are."""
    with pytest.raises(UserError, match="stored protocols: .*vtab1k"):
        store.pair_table("vtab-1k")
    with pytest.raises(UserError, match="stored scores: hscore_reg, logme"):
        store.pair_table("vtab1k", scores=("leep",))
    with pytest.raises(UserError, match="select must be"):
        store.pair_table("vtab1k", select="best")


def test_best_over_hparams_closed_form() -> None:
    """Hand-made jobs: val picks the tied best validation runs (mean), pairs without val fall back to test."""
    jobs = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b"], "dataset": ["d"] * 5,
        "test_value": [0.5, 0.7, 0.9, 0.3, 0.4], "val_value": [0.8, 0.8, 0.1, np.nan, np.nan]})
    by_val = best_over_hparams(jobs, "val").set_index("model")
    assert by_val.loc["a", "performance"] == pytest.approx(0.6) and by_val.loc["a", "selected_by"] == "val"
    assert by_val.loc["b", "performance"] == 0.4 and by_val.loc["b", "selected_by"] == "test"
    by_test = best_over_hparams(jobs, "test").set_index("model")
    assert by_test["performance"].to_dict() == {"a": 0.9, "b": 0.4}


def transfergraph_jobs() -> pd.DataFrame:
    """TransferGraph's image and text records, dataset names resolved with the bundled alias file (pandas only)."""
    aliases = raw("dataset_aliases.csv").set_index("alias")["dataset"]
    frame = pd.concat([raw(f"history_transfergraph_{m}.csv.gz").assign(modality=m) for m in ("image", "text")])
    return frame.assign(dataset=frame["dataset"].map(lambda d: aliases.get(d, d)))


def test_transfergraph_protocols_are_named_from_their_rows(store) -> None:
    """Each distinct (train slice, PEFT method, LoRA rank, epochs) of the records is one protocol, named after
    them; its jobs are exactly those rows; the facts (lr, epochs, PEFT, examples) are the rows' values."""
    frame = transfergraph_jobs()
    frame["expected"] = [
        "transfergraph:" + "-".join(
            ([f"{float(s[1:]) * 100:g}pct"] if isinstance(s, str) else [])
            + ([p + (f"-r{r:g}" if r == r else "")] if isinstance(p, str) else []) + [f"{e:g}ep"])
        for s, p, r, e in zip(frame["train_slice"], frame["peft_method"], frame["lora_r"], frame["epochs"],
                              strict=True)]
    assert set(frame["expected"]) == {"transfergraph:70pct-30ep", "transfergraph:full-5ep",
                                      "transfergraph:lora-r1-4ep", "transfergraph:lora-r1-8ep",
                                      "transfergraph:lor-4ep"}  # `lor`: one record as published
    stored = store.jobs(source=None)
    stored = stored[stored["protocol"].str.startswith("transfergraph:")]
    assert stored["protocol"].value_counts().to_dict() == frame["expected"].value_counts().to_dict()
    facts = store.protocol_facts().set_index("protocol")
    for name, group in frame.groupby("expected"):
        assert facts.at[name, "history"] == "transfergraph"
        assert (facts.at[name, "lr_min"], facts.at[name, "lr_max"]) == (group["lr"].min(), group["lr"].max())
        assert facts.at[name, "epochs"] == group["epochs"].iloc[0]
    assert facts.at["transfergraph:lora-r1-4ep", "peft"] == "lora" and facts.at["transfergraph:lora-r1-4ep",
                                                                                 "lora_r"] == 1
    assert facts.at["transfergraph:70pct-30ep", "train_fraction"] == 0.7
    vtab = facts.loc["vtab1k"]  # the learning-rate grid spans SHiFT vision (0.01, 0.1) and text (0.01)
    assert (vtab["history"], vtab["examples"], vtab["epochs"], vtab["lr_min"], vtab["lr_max"]) == (
        "shift", 800, 25, 0.01, 0.1)


def test_aliases_put_transfergraph_on_shift_names_and_scores(store) -> None:
    """TransferGraph's `pets` rows are `oxford_iiit_pet` pairs; the pairs that have both bundled scores are
    counted independently from the raw files."""
    frame = transfergraph_jobs()
    image = store.pair_table("transfergraph:70pct-30ep", scores=("logme", "hscore_reg"))
    assert "pets" not in set(image["dataset"]) and "oxford_iiit_pet" in set(image["dataset"])
    assert set(image["dataset"]) == set(frame.loc[frame["modality"] == "image", "dataset"])
    pets = store.jobs(dataset="pets", protocol="transfergraph:70pct-30ep")  # a query resolves the alias
    assert set(pets["dataset"]) == {"oxford_iiit_pet"}
    assert len(pets) == (raw("history_transfergraph_image.csv.gz")["dataset"] == "pets").sum() == 180
    scores = raw("scores_logme_hscore.csv.gz").pivot_table(index=["model", "dataset"], columns="metric",
                                                          values="value", aggfunc="last").dropna().reset_index()
    for protocol, modality in (("transfergraph:70pct-30ep", "image"), ("transfergraph:full-5ep", "text")):
        pairs = frame[frame["modality"] == modality]
        if modality == "text":
            pairs = pairs[pairs["peft_method"] == "full"]
        expected = pairs[["model", "dataset"]].drop_duplicates().merge(scores, on=["model", "dataset"])
        table = store.pair_table(protocol, scores=("logme", "hscore_reg"))
        both = table.dropna(subset=["score_logme", "score_hscore_reg"])
        assert len(both) == len(expected) and len(both) == {"image": 1145, "text": 1246}[modality]


def test_multi_protocol_pair_table(store) -> None:
    """Several protocols: the union of their single tables, each row with its protocol and the protocol's facts;
    `examples` is the protocol's training examples (TransferGraph: 70% of its `dataset_size`)."""
    names = ["vtab1k", "transfergraph:70pct-30ep"]
    both = store.pair_table(names, modality="image")
    singles = [store.pair_table(name, modality="image") for name in names]
    assert len(both) == sum(len(t) for t in singles)
    pd.testing.assert_frame_equal(both[both["protocol"] == "vtab1k"].reset_index(drop=True), singles[0])
    assert not both.duplicated(["protocol", "dataset", "model"]).any()
    tg = both[both["protocol"] == "transfergraph:70pct-30ep"].set_index(["model", "dataset"])
    rawtg = transfergraph_jobs().query("modality == 'image'").set_index(["model", "dataset"])
    sizes = np.floor(rawtg["dataset_size"] * 0.7).reindex(tg.index)
    known = sizes.notna()  # food101 has no size: its examples are not known
    np.testing.assert_array_equal(tg.loc[known, "p_examples"], sizes[known])
    assert tg.loc[~known].index.get_level_values("dataset").unique().tolist() == ["food101"]
    assert (both.loc[both["protocol"] == "vtab1k", "p_examples"] == 800).all()
    assert set(store.pair_table("all")["protocol"]) == set(store.protocols()["protocol"])
    assert store.pair_table("vtab1k,parc")["protocol"].unique().tolist() == ["parc", "vtab1k"]
