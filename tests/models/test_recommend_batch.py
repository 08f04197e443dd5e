"""`recommender recommend`: batch mode (one table for many datasets), expected performance in the metric's units,
model facts, the in-sample flag and refused groups and modalities, on a small store built here."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.cli import main
from recommender.history import open_store
from recommender.history.ingest import ingest_file

MODELS = [f"m{i}" for i in range(8)]
DATASETS = [f"d{i}" for i in range(5)]
MISSING = {("m6", "d1"), ("m7", "d1"), ("m0", "d3")}  # never run: out of sample although the dataset is known


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of 8 models x 5 image datasets (top-1 in %, each dataset on its own scale) less the MISSING pairs,
    with model and dataset facts."""
    folder = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(3)
    jobs = pd.DataFrame([{"model": m, "dataset": d, "metric": "top1", "protocol": "vtab1k",
                          "value": round(40 + 8 * j + 3 * i + rng.normal(0, 2) * (1 + j), 2)}
                         for j, d in enumerate(DATASETS) for i, m in enumerate(MODELS) if (m, d) not in MISSING])
    models = pd.DataFrame({"model": MODELS, "family": ["vit", "resnet"] * 4,
                           "pretrain_dataset": ["in1k", "in21k", "in1k", "laion"] * 2,
                           "params_m": [5.0, 11.7, 22.0, 25.6, 86.0, 44.5, 304.0, 60.2], "input_size": 224.0})
    datasets = pd.DataFrame({"dataset": DATASETS, "group": ["natural", "structured"] * 2 + ["natural"],
                             "modality": "image", "examples": 800.0, "classes": [10.0, 2.0, 47.0, 100.0, 5.0]})
    url = f"sqlite:///{folder / 'history.db'}"
    store = open_store(url, create=True)
    for kind, frame in (("models", models), ("datasets", datasets), ("jobs", jobs)):
        frame.to_csv(folder / f"{kind}.csv", index=False)
        ingest_file(store, folder / f"{kind}.csv", kind=kind)
    return url


@pytest.fixture(scope="module")
def lr(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An LR on d,m trained by the CLI on the store."""
    folder = str(tmp_path_factory.mktemp("lr") / "model")
    assert main(["train", "--recommender", "lr", "--db", store_url, "--out", folder]) == 0
    return folder


def recommend(capsys: pytest.CaptureFixture, *argv: str) -> pd.DataFrame:
    """The JSON table of a successful `recommend` call."""
    assert main(["recommend", *argv, "--json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def test_batch_gives_one_table_equal_to_single_calls(capsys, lr, store_url, tmp_path):
    """--datasets and --datasets-file: one table with a dataset column whose rows are the single calls' rows."""
    base = ["--model", lr, "--db", store_url, "--top-k", "4"]
    both = recommend(capsys, *base, "--datasets", "d0,d3")
    assert list(both["dataset"].unique()) == ["d0", "d3"] and len(both) == 8
    for name in ("d0", "d3"):
        single = recommend(capsys, *base, "--dataset", name)
        pd.testing.assert_frame_equal(both[both["dataset"] == name].reset_index(drop=True), single)
    file = tmp_path / "datasets.csv"
    file.write_text("dataset,examples,classes,group,modality\nd2,,,,\nnew-task,1000,7,natural,image\n")
    table = recommend(capsys, *base, "--datasets-file", str(file))
    assert list(table["dataset"].unique()) == ["d2", "new-task"]
    new = recommend(capsys, *base, "--dataset", "new-task", "--examples", "1000", "--classes", "7",
                    "--group", "natural", "--modality", "image")
    pd.testing.assert_frame_equal(table[table["dataset"] == "new-task"].reset_index(drop=True), new)
    assert main(["recommend", *base, "--datasets", "d0,d3", "--csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert csv.columns.tolist() == both.columns.tolist() and csv["model"].tolist() == both["model"].tolist()
    np.testing.assert_allclose(csv["expected"], both["expected"], rtol=1e-12)  # CSV keeps full precision


def test_expected_performance_is_the_dataset_scale_back_transform(capsys, lr, store_url):
    """expected = mean + z * std, with the dataset's mean and population std over its stored results; for a new
    dataset, the mean of the training datasets' means and of their stds. Tolerance 1e-9: float64 arithmetic."""
    jobs = open_store(store_url).pair_table("vtab1k")
    per_dataset = jobs.groupby("dataset")["performance"].agg(["mean", lambda v: v.std(ddof=0)])
    per_dataset.columns = ["mean", "std"]
    table = recommend(capsys, "--model", lr, "--db", store_url, "--datasets", "d1,d4,brand-new",
                      "--top-k", "8", "--examples", "800", "--classes", "10")
    for name, rows in table.groupby("dataset"):
        mean, std = (per_dataset.loc[name] if name in per_dataset.index else per_dataset.mean())[["mean", "std"]]
        np.testing.assert_allclose(rows["expected"], mean + rows["predicted_z"] * std, rtol=0, atol=1e-9)
    # the z-score is the recommender's own prediction: the ranking is by it
    assert all(rows["predicted_z"].is_monotonic_decreasing for _, rows in table.groupby("dataset"))
    assert main(["recommend", "--model", lr, "--db", store_url, "--dataset", "brand-new"]) == 0
    out = capsys.readouterr().out
    assert "brand-new: not in the training history, so `expected` uses the typical scale of its 5 datasets" in out


def test_in_sample_exactly_for_the_training_pairs_with_their_measured_value(capsys, lr, store_url):
    """in_sample is true exactly for the (model, dataset) pairs of the training pair table; measured is their
    performance there, and blank elsewhere. Model facts come from the store."""
    pairs = open_store(store_url).pair_table("vtab1k").set_index(["model", "dataset"])
    table = recommend(capsys, "--model", lr, "--db", store_url, "--datasets", "d1,d3,elsewhere", "--top-k", "8")
    keys = list(zip(table["model"], table["dataset"], strict=True))
    assert table["in_sample"].tolist() == [key in pairs.index for key in keys]
    assert not table["in_sample"][[key in MISSING for key in keys]].any()
    inside = table[table["in_sample"]]
    np.testing.assert_array_equal(inside["measured"], pairs.loc[list(zip(inside["model"], inside["dataset"],
                                                                         strict=True)), "performance"])
    assert table.loc[~table["in_sample"], "measured"].isna().all()
    facts = pairs.reset_index().drop_duplicates("model").set_index("model")
    for column in ("family", "params_m", "pretrain_dataset"):
        assert table[column].tolist() == facts.loc[table["model"], column].tolist()


@pytest.mark.parametrize(("flag", "value", "known"), [("--group", "natrual", "natural, structured"),
                                                      ("--modality", "images", "image")])
def test_unknown_group_or_modality_is_refused_with_the_known_ones(capsys, lr, store_url, flag, value, known):
    assert main(["recommend", "--model", lr, "--db", store_url, "--dataset", "x", flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"recommender recommend: error: {flag} unknown {flag[2:]} {value!r}; the store knows {known}"]


@pytest.mark.parametrize(("text", "problem"), [
    ("dataset,group\nd0,\nx,natrual\n", "row 2: group: unknown group 'natrual'; the store knows natural, structured"),
    ("dataset,examples\nd0,many\n", "row 1: examples: 'many' is not a positive number"),
    ("dataset,examples\nd0,-3\n", "row 1: examples: '-3' is not a positive number"),
    ("dataset,classes\nd0,3\n,4\n", "row 2: dataset: blank name"),
    ("dataset\nd0\nd0\n", "row 2: dataset: d0 is named again"),
    ("name,examples\nd0,5\n", "columns must be dataset and any of examples, classes, group, modality; unknown "
                              "column(s) name"),
])
def test_a_bad_datasets_file_is_one_line_naming_row_and_column(capsys, lr, store_url, tmp_path, text, problem):
    file = tmp_path / "datasets.csv"
    file.write_text(text)
    assert main(["recommend", "--model", lr, "--db", store_url, "--datasets-file", str(file)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines() == [f"recommender recommend: error: {file}: {problem}"]


def test_facts_flags_with_a_datasets_file_are_refused(capsys, lr, store_url, tmp_path):
    file = tmp_path / "datasets.csv"
    file.write_text("dataset\nd0\n")
    assert main(["recommend", "--model", lr, "--db", store_url, "--datasets-file", str(file), "--classes", "3"]) == 2
    assert "give the datasets' facts as its columns" in capsys.readouterr().err


def test_db_before_the_command_reaches_it(capsys, lr, store_url, tmp_path, monkeypatch):
    """`recommender --db URL recommend ...` reads the same store as `... recommend --db URL` (the default store
    does not exist here, so a --db that got lost would fail)."""
    monkeypatch.setenv("RECOMMENDER_DB", str(tmp_path / "none.db"))
    assert main(["--db", store_url, "recommend", "--model", lr, "--dataset", "d0", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    after = recommend(capsys, "--model", lr, "--dataset", "d0", "--db", store_url)
    pd.testing.assert_frame_equal(pd.DataFrame(before), after)  # NaN == NaN here, unlike in dict equality
    assert len(before) == len(MODELS)


def test_pool_file_models_keep_their_facts(capsys, lr, store_url, tmp_path: Path):
    """A --pool file's model with its own facts shows them; a stored one gets the store's."""
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"model": ["m1", "mine"], "family": [None, "convnext"], "params_m": [None, 28.6]}).to_csv(
        pool, index=False)
    table = recommend(capsys, "--model", lr, "--db", store_url, "--dataset", "d0", "--pool", str(pool))
    facts = table.set_index("model")
    assert facts.loc["mine", "family"] == "convnext" and facts.loc["mine", "params_m"] == 28.6
    assert facts.loc["m1", "family"] == "resnet" and facts.loc["m1", "params_m"] == 11.7
    assert not facts.loc["mine", "in_sample"] and facts.loc["m1", "in_sample"]
