"""`recommender evaluate` end to end on a pair-table file: report, CSVs, plots, one-line errors."""

import numpy as np
import pandas as pd
import pytest
from pair_tables import quality_pairs as pair_table

import recommender.evaluation.plots as report_plots
import recommender.evaluation.report as report
from recommender.cli import main
from recommender.evaluation import evaluate, make_folds, make_strategy


@pytest.fixture()
def pairs_file(tmp_path):
    """A small pair table written as CSV, with one broken run."""
    pairs = pair_table()
    pairs.loc[0, "performance"] = 0.0
    path = tmp_path / "pairs.csv"
    pairs.to_csv(path, index=False)
    return path, pairs


@pytest.mark.slow
def test_evaluate_writes_report_csv_and_plots(pairs_file, tmp_path, capsys):
    """The report holds every strategy; results.csv has random's exact regret; PNGs are real images."""
    path, pairs = pairs_file
    out = tmp_path / "out"
    code = main(["evaluate", "--split", "loo", "--pairs", str(path), "--strategies",
                 "oracle,random,score:good,hybrid:imagenet:good", "--budgets", "1,3", "--out", str(out)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert all(name in report for name in ("| oracle |", "| random |", "| score:good |", "| hybrid:imagenet:good |"))
    assert "broken run" in report  # the 0.0 run is listed, not averaged in
    results = pd.read_csv(out / "results.csv")
    random1 = results.query(
        "strategy == 'random' and measure == 'regret' and budget == 1").set_index("dataset")["value"]
    kept = pairs.iloc[1:].groupby("dataset")["performance"]
    np.testing.assert_allclose(random1.sort_index(), (kept.max() - kept.mean()).sort_index(), atol=1e-12)
    pngs = [out / "regret_vs_budget.png", *sorted((out / "scatter").glob("*.png"))]
    assert len(pngs) == 1 + pairs["dataset"].nunique()
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert {"mean", "std", "ci_low", "ci_high"} <= set(pd.read_csv(out / "summary.csv").columns)


@pytest.mark.parametrize("extra, message", [
    (["--strategies", "nonsense"], "unknown strategy 'nonsense'; strategies: auto (the default"),
    (["--strategies", "score:missing"], "score_missing"),
    (["--split", "unseen-dataset", "--sources", "zz"], "unknown: ['zz']"),
    (["--select", "test"], "--select applies to the store only"),
    (["--modality", "audio"], "--modality audio: no such pairs"),
])
def test_bad_input_is_one_line_and_exit_2(pairs_file, tmp_path, capsys, extra, message):
    """Unknown strategies, absent score columns and unknown sources: exit 2 and one line naming the problem."""
    path, _ = pairs_file
    args = ["evaluate", "--split", "loo", "--pairs", str(path), "--out", str(tmp_path / "o"), *extra]
    assert main(args) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]  # besides progress
    assert message in line


def test_modality_filters_a_pair_table(tmp_path, capsys):
    """--modality keeps the pairs of that modality; a table without a modality column is refused."""
    pairs = pair_table()
    pairs["modality"] = np.where(pairs["dataset"].isin(["d0", "d1"]), "image", "text")
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    args = ["evaluate", "--split", "loo", "--strategies", "score:good", "--budgets", "1", "--out", str(tmp_path / "o"),
            "--modality", "text", "--pairs"]
    assert main([*args, str(tmp_path / "pairs.csv")]) == 0
    assert set(pd.read_csv(tmp_path / "o" / "results.csv")["dataset"]) == {"d2", "d3", "d4"}
    assert "- modality: text" in (tmp_path / "o" / "report.md").read_text()
    pairs.drop(columns="modality").to_csv(tmp_path / "plain.csv", index=False)
    capsys.readouterr()
    assert main([*args, str(tmp_path / "plain.csv")]) == 2
    assert capsys.readouterr().err.strip().endswith("has no modality column")


def test_out_that_is_a_file_is_refused(pairs_file, tmp_path, capsys):
    """--out naming an existing file: one line, before any evaluation, and the file is untouched."""
    path, _ = pairs_file
    (tmp_path / "taken").write_text("keep")
    assert main(["evaluate", "--split", "loo", "--pairs", str(path), "--out", str(tmp_path / "taken")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("is a file; give a folder") and (tmp_path / "taken").read_text() == "keep"


def test_report_folder_is_replaced_whole(tmp_path, monkeypatch):
    """The files are built in a hidden folder and moved in: a failing rewrite leaves the old files whole."""
    pairs = pair_table(n_datasets=3, n_models=4)
    ev = evaluate(make_folds(pairs, "loo"), {"s": make_strategy("score:good")}, budgets=(1,))
    out = tmp_path / "out"
    report.write_report(ev, out, "t", {})
    names = {p.name for p in out.rglob("*")}
    assert names == {"report.md", "report.html", "results.csv", "summary.csv", "predictions.csv.gz", "issues.csv",
                     "strategies.csv", "regret_vs_budget.png", "scatter", "d0.png", "d1.png", "d2.png",
                     ".recommender-manifest.json"}
    assert len(pd.read_csv(out / "predictions.csv.gz")) == len(pairs)  # gzipped by its name
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def half_written(*args):
        args[-1].write_bytes(b"\x89PNG")
        raise OSError("disk full")

    monkeypatch.setattr(report_plots, "plot_scatter", half_written)
    with pytest.raises(OSError, match="disk full"):
        report.write_report(ev, out, "t", {})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not list(out.glob(".recommender-part-*"))


@pytest.mark.slow
def test_scatter_figures_drawn_by_worker_processes_are_the_serial_ones(tmp_path):
    """write_report draws the per-dataset figures on the executor it is given: the same PNG bytes as in this
    process."""
    from recommender.executors import LocalExecutor

    pairs = pair_table(n_datasets=3, n_models=4)
    ev = evaluate(make_folds(pairs, "loo"), {"s": make_strategy("score:good")}, budgets=(1,))
    report.write_report(ev, tmp_path / "serial", "t", {})
    report.write_report(ev, tmp_path / "pool", "t", {}, executor=LocalExecutor(2))
    pngs = sorted(p.name for p in (tmp_path / "serial" / "scatter").glob("*.png"))
    assert pngs == ["d0.png", "d1.png", "d2.png"]
    assert all((tmp_path / "serial" / "scatter" / n).read_bytes() == (tmp_path / "pool" / "scatter" / n).read_bytes()
               for n in pngs)


@pytest.mark.slow
def test_default_table_holds_the_simple_baselines(pairs_file, tmp_path, capsys):
    """No --strategies: oracle, random, the agnostic baselines size, imagenet and mean-perf, and the default ranking
    auto, each measured; size's regret at B=1 is that of the biggest model (params_m), computed here from the
    table."""
    path, pairs = pairs_file
    assert main(["evaluate", "--split", "loo", "--pairs", str(path), "--budgets", "1", "--out",
                 str(tmp_path / "o")]) == 0
    results = pd.read_csv(tmp_path / "o" / "results.csv")
    assert set(results["strategy"]) == {"oracle", "random", "size", "imagenet", "mean-perf", "auto"}
    size1 = results.query("strategy == 'size' and measure == 'regret' and budget == 1").set_index("dataset")["value"]
    kept = pairs.iloc[1:]  # the broken 0.0 run is dropped
    best = kept.groupby("dataset")["performance"].max()
    biggest = kept.loc[kept.groupby("dataset")["params_m"].idxmax()].set_index("dataset")["performance"]
    np.testing.assert_allclose(size1.sort_index(), (best - biggest).sort_index(), atol=1e-12)


@pytest.mark.parametrize("quiet", [[], ["--quiet"], ["TOP"]], ids=["default", "quiet", "top-level-quiet"])
def test_progress_lines_by_default_none_when_quiet(pairs_file, tmp_path, capsys, monkeypatch, quiet):
    """stderr is no terminal: a progress line per interval (here every task), none with --quiet before or after the
    command name."""
    monkeypatch.setattr("recommender.progress.LINE_SECONDS", 0.0)
    path, pairs = pairs_file
    args = ["evaluate", "--split", "loo", "--pairs", str(path), "--strategies", "oracle,random", "--budgets", "1",
            "--out", str(tmp_path / "o")]
    argv = ["--quiet", *args] if quiet == ["TOP"] else [*args, *quiet]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evaluate (fold x strategy)")]
    tasks = 2 * pairs["dataset"].nunique()
    if quiet:
        assert lines == []
    else:
        assert lines[0].startswith(f"evaluate (fold x strategy): 1/{tasks} tasks (")
        assert lines[-1].startswith(f"evaluate (fold x strategy): {tasks}/{tasks} tasks (100%), ")


def test_every_dataset_left_out_is_named_with_its_reason(tmp_path, capsys):
    """A dataset with 2 models (fewer than MIN_MODELS) is named with its reason on stdout and in the report."""
    pairs = pair_table(n_datasets=4)
    pairs = pairs[(pairs["dataset"] != "d3") | pairs["model"].isin(["m0", "m1"])]
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["evaluate", "--split", "loo", "--pairs", str(tmp_path / "pairs.csv"), "--strategies", "random",
                 "--budgets", "1", "--out", str(tmp_path / "o")]) == 0
    line = "left out: d3: too few models: 2 < 3 models: not evaluated"
    assert line in capsys.readouterr().out.splitlines()
    report = (tmp_path / "o" / "report.md").read_text()
    assert "## Datasets left out (1)" in report and "| d3 | too few models: 2 < 3 models: not evaluated |" in report


def test_datasets_of_another_metric_are_named(small_store_url, tmp_path, capsys):
    """A store dataset measured in another metric than its protocol's is not comparable: named, not silent."""
    from recommender.history import open_store
    from recommender.history.ingest import ingest_file

    other = pd.DataFrame({"model": ["resnet50", "densenet121", "vgg16"], "dataset": "cars", "metric": "f1",
                          "value": [50.0, 60.0, 70.0]})
    other.to_csv(tmp_path / "f1.csv", index=False)
    ingest_file(open_store(small_store_url), tmp_path / "f1.csv", constants={"protocol": "full-finetune"})
    assert main(["evaluate", "--split", "loo", "--protocol", "full-finetune", "--db", small_store_url,
                 "--strategies", "random", "--budgets", "1", "--out", str(tmp_path / "o")]) == 0
    line = ("left out: cars: other metric: measured in f1 under full-finetune, not in the protocol's metric "
            "full_finetune_top1: not comparable, not evaluated")
    assert line in capsys.readouterr().out.splitlines()
    assert "| cars | other metric: measured in f1 under full-finetune" in (tmp_path / "o" / "report.md").read_text()
