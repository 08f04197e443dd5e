"""Configuration-level recommendations from the CLI: the job table, `train --features d,m,h`, `recommend --configs`
with --max-params, --max-cost, --pareto and --plot, their one-line errors, and the imports `recommend` keeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recommend_helpers import imported_by

from recommender.cli import main
from recommender.history import open_store
from recommender.history.ingest import ingest_file
from recommender.history.job_table import job_table
from recommender.models.configs import pareto_front

MODELS = [f"m{i}" for i in range(8)]
LRS = (0.01, 0.1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """8 models x 5 image datasets x 2 learning rates under protocol p (lr 0.01 better, except for m7), seconds
    proportional to parameters; a second protocol q with one setting; and an FM on d,m,h trained by the CLI."""
    folder = tmp_path_factory.mktemp("configs")
    rng = np.random.default_rng(0)
    jobs = pd.DataFrame([{"model": m, "dataset": f"d{d}", "metric": "top1", "protocol": "p", "hp.lr": lr,
                          "hp.epochs": 10, "seconds": round(3.0 * (i + 1) * (1 + 0.1 * d), 3),
                          "value": round(60 + 2.0 * i + (5 if (lr == 0.01) != (i == 7) else -5)
                                         + rng.normal(0, 0.3), 3)}
                         for d in range(5) for i, m in enumerate(MODELS) for lr in LRS])
    one = jobs[jobs["hp.lr"] == 0.01].assign(protocol="q")
    models = pd.DataFrame({"model": MODELS, "family": "f", "params_m": [10.0 * (i + 1) for i in range(8)]})
    datasets = pd.DataFrame({"dataset": [f"d{d}" for d in range(5)], "group": "g", "modality": "image",
                             "examples": 800.0, "classes": 10.0})
    url = f"sqlite:///{folder / 'history.db'}"
    db = open_store(url, create=True)
    for kind, frame in (("models", models), ("datasets", datasets), ("jobs", pd.concat([jobs, one]))):
        frame.to_csv(folder / f"{kind}.csv", index=False)
        ingest_file(db, folder / f"{kind}.csv", kind=kind)
    out = str(folder / "fm-h")
    assert main(["train", "--recommender", "fm", "--features", "d,m,h", "--protocol", "p", "--db", url,
                 "--out", out, "--param", "epochs=60"]) == 0
    return url, out


def pairs_of(table: pd.DataFrame) -> list[tuple[str, float]]:
    """The (model, lr) rows of a table, sorted."""
    return sorted(zip(table["model"], table["lr"], strict=True))


def configs(capsys: pytest.CaptureFixture, url: str, model: str, *argv: str) -> pd.DataFrame:
    """The JSON table of a successful `recommend --configs` call."""
    assert main(["recommend", "--model", model, "--db", url, "--dataset", "d2", "--configs", *argv, "--json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def test_job_table_has_one_row_per_job_with_its_configuration(store):
    url, _ = store
    table = job_table(open_store(url), "p")
    assert len(table) == 8 * 5 * 2
    assert sorted(table["h_lr"].unique()) == list(LRS) and set(table["h_epochs"]) == {10.0}
    jobs = open_store(url).jobs(protocol="p")
    assert sorted(table["performance"]) == sorted(jobs["test_value"])  # each job's own value, not the pair's best
    assert table["params_m"].notna().all() and (table["seconds"] > 0).all()


def test_configs_rank_model_and_learning_rate_with_expected_cost(capsys, store):
    """Rows are (model, lr) pairs; expected = the dataset's job mean + z x its job std (independently computed);
    measured is the mean of the jobs of that configuration; the cost's low/high bracket it by one factor."""
    url, model = store
    rows = configs(capsys, url, model, "--top-k", "16")
    assert len(rows) == 16 and set(rows["lr"]) == set(LRS) and set(rows["model"]) == set(MODELS)
    assert rows["expected"].is_monotonic_decreasing and list(rows["rank"]) == list(range(1, 17))
    jobs = job_table(open_store(url), "p")
    mine = jobs[jobs["dataset"] == "d2"]
    np.testing.assert_allclose(rows["expected"], mine["performance"].mean()
                               + rows["predicted_z"] * mine["performance"].std(ddof=0), rtol=1e-9)
    truth = mine.groupby(["model", "h_lr"])["performance"].mean()
    np.testing.assert_allclose(rows["measured"], truth.reindex(list(zip(rows["model"], rows["lr"], strict=True))),
                               rtol=1e-9)
    factor = rows["cost_high"] / rows["cost_s"]
    np.testing.assert_allclose(rows["cost_s"] / rows["cost_low"], factor, rtol=1e-9)
    np.testing.assert_allclose(factor, factor.iloc[0], rtol=1e-9)
    assert factor.iloc[0] > 1
    # costs grow with parameters, as the history's seconds do
    by_model = rows.groupby("model")["cost_s"].first().reindex(MODELS)
    assert by_model.is_monotonic_increasing
    # the learning rate the history found best is ranked first for the top model
    assert rows.iloc[0]["lr"] == (0.1 if rows.iloc[0]["model"] == "m7" else 0.01)


def test_limits_keep_only_rows_within_them(capsys, store):
    url, model = store
    rows = configs(capsys, url, model, "--top-k", "100", "--max-params", "40M", "--max-cost", "0.25m")
    assert len(rows) and (rows["params_m"] <= 40).all() and (rows["cost_s"] <= 15).all()
    every = configs(capsys, url, model, "--top-k", "100")
    within = every[(every["params_m"] <= 40) & (every["cost_s"] <= 15)]
    assert pairs_of(rows) == pairs_of(within)


def test_pareto_is_the_brute_force_front_and_plot_is_written(capsys, store, tmp_path):
    url, model = store
    every = configs(capsys, url, model, "--top-k", "100")
    png = tmp_path / "front.png"
    front = configs(capsys, url, model, "--pareto", "--plot", str(png))
    e, c = every["expected"].to_numpy(), every["cost_s"].to_numpy()
    brute = [i for i in range(len(every)) if not any(
        e[j] >= e[i] and c[j] <= c[i] and (e[j] > e[i] or c[j] < c[i]) for j in range(len(every)))]
    assert pairs_of(front) == pairs_of(every.iloc[brute])
    assert front["cost_s"].is_monotonic_increasing and pareto_front(e, c).sum() == len(front)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_setting_says_so(capsys, store):
    url, model = store
    rows = configs(capsys, url, model, "--protocol", "q")
    assert set(rows["lr"]) == {0.01}
    assert "the history holds one setting under q (lr 0.01, epochs 10)" in rows["notes"].iloc[0][0]


def test_table_output_is_readable(capsys, store):
    url, model = store
    assert main(["recommend", "--model", model, "--db", url, "--dataset", "d2", "--configs", "--top-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("top 3 of 16 (model, configuration) rows for d2")
    assert out[1].split() == ["rank", "model", "family", "params_m", "lr", "epochs", "expected", "predicted_z",
                              "measured", "cost_s", "cost_low", "cost_high"]
    assert len(out) == 5


@pytest.mark.parametrize(("argv", "message"), [
    (["--configs", "--max-cost", "5x"], "argument --max-cost: expected a positive number such as 3600, 90m or 5h"),
    (["--configs", "--max-params", "-3"], "argument --max-params: expected a positive number such as 100M"),
    (["--pareto"], "--pareto rank(s) configurations: add --configs"),
    (["--configs", "--plot", "x.png"], "--plot draws the Pareto front: add --pareto"),
    (["--configs", "--max-params", "1k"], "no (model, configuration) has at most 1,000 parameters"),
])
def test_bad_values_are_one_line(capsys, store, argv, message):
    url, model = store
    try:
        code = main(["recommend", "--model", model, "--db", url, "--dataset", "d2", *argv])
    except SystemExit as exc:  # a value refused while parsing: argparse's usage, then its one error line
        code = exc.code
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and message in err[0]


def test_configs_need_the_h_block(capsys, store, tmp_path):
    url, _ = store
    plain = str(tmp_path / "lr")
    assert main(["train", "--recommender", "lr", "--protocol", "p", "--db", url, "--out", plain]) == 0
    capsys.readouterr()
    assert main(["recommend", "--model", plain, "--db", url, "--dataset", "d2", "--configs"]) == 2
    assert "--configs needs a recommender trained on jobs with the configuration block h" in capsys.readouterr().err


def test_recommend_configs_imports_no_training_library(store):
    url, model = store
    assert imported_by(["recommend", "--db", url, "--model", model, "--dataset", "d2", "--configs",
                        "--max-cost", "1h"]) == []


@pytest.mark.slow
def test_plot_alone_imports_matplotlib(store, tmp_path):
    url, model = store
    assert imported_by(["recommend", "--db", url, "--model", model, "--dataset", "d2", "--configs", "--pareto",
                        "--plot", str(Path(tmp_path) / "p.png")]) == ["matplotlib"]


# --- `next --configs` ------------------------------------------------------------------------------------------------

NEW_DATASET = ["--dataset", "new", "--examples", "800", "--classes", "10", "--group", "g", "--modality", "image"]


def next_rows(capsys: pytest.CaptureFixture, url: str, model: str, *argv: str) -> pd.DataFrame:
    """The JSON rows of a successful `next --configs` call on a dataset the store has no job on."""
    assert main(["next", "--db", url, "--protocol", "p", *NEW_DATASET, "--configs", "--model", model, *argv,
                 "--json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def test_next_configs_without_results_ranks_as_recommend(capsys, store):
    url, model = store
    proposed = next_rows(capsys, url, model, "--budget", "16")
    assert main(["recommend", "--model", model, "--db", url, *NEW_DATASET, "--configs", "--top-k", "16",
                 "--json"]) == 0
    ranked = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert list(zip(proposed["model"], proposed["lr"], strict=True)) == list(zip(ranked["model"], ranked["lr"],
                                                                                   strict=True))
    np.testing.assert_allclose(proposed["expected"], ranked["expected"])
    np.testing.assert_allclose(proposed["prior"], ranked["expected"])
    np.testing.assert_allclose(proposed["cumulative_s"], np.cumsum(ranked["cost_s"]))
    assert len(next_rows(capsys, url, model)) == 1  # one proposal by default


def test_next_configs_excludes_tried_rows_and_updates_by_hand(capsys, store, tmp_path):
    """A result with a setting removes that row; one without removes the model's best-expected row. The update,
    computed here independently: every row moves by sum(r) / (n + 1) over the n residuals r (observed minus prior),
    each model's rows by the sum of its r minus that shift over its own count + 1."""
    url, model = store
    prior = next_rows(capsys, url, model, "--budget", "16").set_index(["model", "lr"])["prior"]
    observed = tmp_path / "observed.csv"
    observed.write_text("model,lr,epochs,performance\nm3,0.01,10,90\nm3,0.1,,40\nm5,,,50\n")
    rows = next_rows(capsys, url, model, "--budget", "16", "--observed", str(observed))
    best5 = 0.01 if prior[("m5", 0.01)] >= prior[("m5", 0.1)] else 0.1
    tried = {("m3", 0.01), ("m3", 0.1), ("m5", best5)}
    assert set(zip(rows["model"], rows["lr"], strict=True)) == set(prior.index) - tried and len(rows) == 13
    r = {"m3": [90 - prior[("m3", 0.01)], 40 - prior[("m3", 0.1)]], "m5": [50 - prior[("m5", best5)]]}
    shift = sum(sum(v) for v in r.values()) / 4
    own = {m: sum(x - shift for x in v) / (len(v) + 1) for m, v in r.items()}
    want = [prior[(m, lr)] + shift + own.get(m, 0.0) for m, lr in zip(rows["model"], rows["lr"], strict=True)]
    np.testing.assert_allclose(rows["expected"], want)
    assert rows["expected"].is_monotonic_decreasing
    assert list(rows["reason"][rows["model"] == "m3"]) == []
    assert "1 result(s) of the model here" in rows.loc[rows["model"] == "m5", "reason"].iloc[0]


def test_next_configs_respects_the_cost_budget(capsys, store):
    """Best expected first, each row kept if it fits what is left of the budget: recomputed from the full ranking."""
    url, model = store
    ranked = next_rows(capsys, url, model, "--budget", "16")
    limit = float(ranked["cost_s"].sum()) / 3
    rows = next_rows(capsys, url, model, "--max-cost", f"{limit:.3f}")
    want, spent = [], 0.0
    for m, lr, cost in zip(ranked["model"], ranked["lr"], ranked["cost_s"], strict=True):
        if spent + cost <= round(limit, 3):
            want.append((m, lr))
            spent += cost
    assert list(zip(rows["model"], rows["lr"], strict=True)) == want and 1 < len(want) < 16
    assert rows["cumulative_s"].iloc[-1] <= limit and rows["cumulative_s"].iloc[-1] == pytest.approx(spent)
    assert len(next_rows(capsys, url, model, "--max-cost", f"{limit:.3f}", "--budget", "2")) == 2


def test_next_configs_on_a_dataset_with_every_row_tried(capsys, store):
    url, model = store
    assert main(["next", "--db", url, "--protocol", "p", "--dataset", "d2", "--configs", "--model", model]) == 2
    assert "every one of the 16 (model, configuration) rows has a result on the dataset" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "body", "message"), [
    (["--max-cost", "0"], None, "argument --max-cost: expected a positive number such as 3600, 90m or 5h"),
    (["--max-cost", "1s"], None, "no untried (model, configuration) is expected to cost at most 1 seconds"),
    (["--budget", "0"], None, "--budget must be >= 1, got 0"),
    (["--strategy", "ucb"], None, "--configs updates the recommender's prediction with the observed results: "
                                  "--strategy does not apply"),
    ([], "model,lr,performance\nm1,0.05,70\n", "observed.csv: row 1: lr: 0.05 is not a setting the history ran"),
    ([], "model,lr,performance\nm1,-1,70\n", "observed.csv: row 1: lr: expected a positive number or blank"),
    ([], "model,performance\nm1,70\nzz,3\n", "observed.csv: row 2: model: unknown model 'zz'"),
    ([], "model,performance\nm1,\n", "observed.csv: row 1: performance: expected a finite number"),
    ([], "model,lr,epochs,performance\nm1,0.1,10,7\nm1,0.1,10,8\n", "row 2: model: 'm1' repeated at the same"),
])
def test_next_configs_bad_values_are_one_line(capsys, store, tmp_path, argv, body, message):
    url, model = store
    if body is not None:
        (tmp_path / "observed.csv").write_text(body)
        argv = [*argv, "--observed", str(tmp_path / "observed.csv")]
    try:
        code = main(["next", "--db", url, "--protocol", "p", *NEW_DATASET, "--configs", "--model", model, *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-cost", "1h"], "--max-cost propose(s) configurations: add --configs"),
    (["--configs"], "--configs needs --model FOLDER"),
])
def test_next_config_flags_need_each_other(capsys, store, argv, message):
    url, _ = store
    assert main(["next", "--db", url, "--protocol", "p", "--dataset", "d2", *argv]) == 2
    assert message in capsys.readouterr().err


def test_next_configs_table_and_imports(capsys, store):
    url, model = store
    argv = ["next", "--db", url, "--protocol", "p", *NEW_DATASET, "--configs", "--model", model, "--max-cost", "1m"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("new: used 0 configuration(s) logged in the store for new; fm (d,m,h) over 8 models x "
                             "2 configurations, within 60 s of expected cost in all")
    assert out[2].split()[:4] == ["rank", "model", "family", "params_m"] and out[2].split()[-2:] == [
        "cumulative_s", "reason"]
    assert imported_by(argv) == []


def test_next_configs_reads_its_rows_of_a_file_of_several_datasets(capsys, store, tmp_path):
    """Rows on other datasets are left out, and an error names the file's own row."""
    url, model = store
    observed = tmp_path / "observed.csv"
    observed.write_text("dataset,model,lr,epochs,performance\nd1,m2,0.01,10,70\nnew,m2,0.01,10,70\n")
    rows = next_rows(capsys, url, model, "--budget", "16", "--observed", str(observed))
    assert ("m2", 0.01) not in set(zip(rows["model"], rows["lr"], strict=True)) and len(rows) == 15
    observed.write_text("dataset,model,lr,epochs,performance\nd1,m2,0.01,10,70\nnew,m2,0.07,10,70\n")
    assert main(["next", "--db", url, "--protocol", "p", *NEW_DATASET, "--configs", "--model", model,
                 "--observed", str(observed)]) == 2
    assert "observed.csv: row 2: lr: 0.07 is not a setting the history ran (0.01, 0.1)" in capsys.readouterr().err


def test_next_configs_defaults_to_the_recommenders_protocol(capsys, store):
    """Without --protocol, the protocol the recommender was trained on (p here; the store holds no vtab1k)."""
    url, model = store
    assert main(["next", "--db", url, *NEW_DATASET, "--configs", "--model", model, "--budget", "16", "--json"]) == 0
    default = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert default.drop(columns="notes").equals(next_rows(capsys, url, model, "--budget", "16").drop(columns="notes"))
