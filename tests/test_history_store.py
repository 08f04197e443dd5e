"""The store on the bundled real history: counts, pair table and aggregation checked against the raw files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.errors import UserError
from recommender.history import open_store
from recommender.history.aggregate import best_over_hparams, train_size
from recommender.history.bundled import HISTORY_DIR, load_bundled
from recommender.history.store import PAIR_COLUMNS

CONTRACT_COLUMNS = ["model", "dataset", "performance", "selected_by", "family", "pretrain_dataset", "params_m",
                    "gmacs", "input_size", "imagenet_top1", "examples", "classes", "modality", "group"]


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
    """Jobs = rows of the five histories, less PARC's 10 rows at -1 (no result); features and scores likewise."""
    job_files = ["history_shift_vision.csv.gz", "history_shift_text.csv.gz", "history_parc.csv.gz",
                 "history_small_zoos_sfda_emms.csv.gz", "history_timm_imagenet_variants.csv.gz"]
    parc_missing = int((raw("history_parc.csv.gz")["value"] == -1).sum())
    assert parc_missing == 10
    counts = store.counts()
    assert counts["jobs"] == sum(len(raw(f)) for f in job_files) - parc_missing
    assert counts["scores"] == len(raw("scores_logme_hscore.csv.gz"))
    model_ids = set().union(*(raw(f)["model"] for f in ("models_hf.csv.gz", "models_timm.csv.gz",
                                                          "models_parc.csv.gz", "history_small_zoos_sfda_emms.csv.gz")))
    assert counts["models"] == len(model_ids)
    assert store.schema_version() == 2


def test_loading_again_adds_nothing(store) -> None:
    """`history init` twice: the natural keys make the second load a no-op."""
    before = store.counts()
    assert load_bundled(store)["added"].sum() == 0
    assert store.counts() == before


def test_pair_table_has_the_contract_columns(store) -> None:
    """docs/contracts.md columns in order, then examples_full and the requested scores."""
    table = store.pair_table("vtab1k", modality="image", scores=("logme", "hscore_reg"))
    assert PAIR_COLUMNS == CONTRACT_COLUMNS
    assert list(table.columns) == [*CONTRACT_COLUMNS, "examples_full", "score_logme", "score_hscore_reg"]
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
        expected[(model, dataset)] = float(np.mean([t for t, v in zip(jobs["value"], jobs["val_accuracy"])
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
    from recommender.history.store import Store

    store = open_store(str(tmp_path / "history.db"), create=True)
    real = Store._write_keyed

    def interrupted(self, conn, kind, *args):
        if kind == "scores":
            raise KeyboardInterrupt
        return real(self, conn, kind, *args)

    monkeypatch.setattr(Store, "_write_keyed", interrupted)
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


def test_train_size_per_protocol() -> None:
    """800 under VTAB-1k and `:800`, a floor of the fraction for `:N%`, the full split otherwise."""
    full = pd.Series([1000.0, 35126.0, np.nan])
    assert train_size("vtab1k", full).tolist() == [800.0, 800.0, 800.0]
    assert train_size("shift::800:1ep", full).tolist() == [800.0, 800.0, 800.0]
    np.testing.assert_array_equal(train_size("shift::80%:25ep", full), [800.0, 28100.0, np.nan])
    np.testing.assert_array_equal(train_size("parc", full), full)
