"""Attacks on outputs: reused and foreign --out folders, a kill mid-write, a damaged feature cache, error reporting
(one line for a user error, a traceback for a bug or with --debug), and the plots' promised properties."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pair_tables import quality_pairs as pair_table

import recommender.evaluation.pipeline as evaluation_pipeline
import recommender.evaluation.plots as plots
from recommender.cli import main
from recommender.evaluation import evaluate, make_folds, make_strategy
from recommender.evaluation.plots import FAMILY_COLOURS, regret_figure, scatter_figure
from recommender.files import MANIFEST, write_output_folder
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset
from recommender.zoo.extract import extract

ROOT = Path(__file__).resolve().parents[2]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def evaluate_args(pairs: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--split", "loo", "--pairs", str(pairs), "--strategies", "oracle,random,score:good",
            "--budgets", "1,3", "--out", str(out), *extra]


@pytest.fixture()
def two_tables(tmp_path):
    """Run A's table has datasets d0..d4, run B's d0..d2 (so A's extra scatters would betray a mix)."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pair_table(n_datasets=5, n_models=6).to_csv(a, index=False)
    pair_table(n_datasets=3, n_models=6, seed=1).to_csv(b, index=False)
    return a, b


# --- reused and foreign output folders ---------------------------------------------------------------------------

def test_rerun_into_the_same_folder_leaves_only_the_second_run(two_tables, tmp_path, capsys):
    """Run B over run A's folder: every file is B's (no A scatter of d3/d4 remains), and results agree with report."""
    a, b = two_tables
    out = tmp_path / "out"
    assert main(evaluate_args(a, out)) == 0
    assert {p.name for p in (out / "scatter").iterdir()} == {f"d{i}.png" for i in range(5)}
    assert main(evaluate_args(b, out)) == 0
    assert {p.name for p in (out / "scatter").iterdir()} == {"d0.png", "d1.png", "d2.png"}
    assert set(pd.read_csv(out / "results.csv")["dataset"]) == {"d0", "d1", "d2"}
    assert "- pairs: " + str(b) in (out / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "out"]  # no temporary folder left


def test_foreign_file_is_refused_unless_overwrite(two_tables, tmp_path, capsys):
    """A file of a report's name that no report wrote: one line, exit 2, untouched; --overwrite replaces that file
    and keeps every other file of the user's."""
    a, _ = two_tables
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "report.md").write_text("my own report")
    assert main(evaluate_args(a, out)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"recommender evaluate: error: {out / 'report.md'} exists and `recommender evaluate` did not "
                    "write it; give --overwrite to replace it, or another folder")
    assert tree(out) == {"thesis.tex": b"precious", "report.md": b"my own report"}
    assert main(evaluate_args(a, out, "--overwrite")) == 0
    assert (out / "thesis.tex").read_text() == "precious" and (out / MANIFEST).is_file()
    assert (out / "report.md").read_text().startswith("#")


@pytest.mark.slow
def test_failure_midway_keeps_the_old_folder_whole(two_tables, tmp_path, monkeypatch, capsys):
    """The build raising midway (after some scatters, as a kill would stop it) leaves run A's folder byte for byte
    and no temporary folder beside it."""
    a, b = two_tables
    out = tmp_path / "out"
    assert main(evaluate_args(a, out)) == 0
    before = tree(out)
    calls = []
    real = plots.plot_scatter

    def dies_on_second(*args):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt  # not an Exception: it passes through main like a signal would
        return real(*args)

    monkeypatch.setattr(plots, "plot_scatter", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        main(evaluate_args(b, out))
    assert calls == ["d0", "d1"] and tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "out"]


@pytest.mark.slow
def test_sigkill_while_building_never_mixes_two_runs(two_tables, tmp_path):
    """A real `kill -9` of a second run while it builds: the old files are intact; what remains is hidden, and the
    next run removes it."""
    a, b = two_tables
    out = tmp_path / "out"
    assert main(evaluate_args(a, out)) == 0
    before = tree(out)
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", *evaluate_args(b, out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob(".recommender-part-*/*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed while building"
    (left,) = [p.name for p in out.iterdir() if p.name.startswith(".recommender-part-")]
    assert {k: v for k, v in tree(out).items() if not k.startswith(left)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "out"]
    assert main(evaluate_args(b, out)) == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".recommender-part-")]


def test_folder_helper_refuses_a_file_and_accepts_an_empty_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        write_output_folder(tmp_path / "f", lambda folder: None, kind="t")
    (tmp_path / "empty").mkdir()
    write_output_folder(tmp_path / "empty", lambda folder: (folder / "x.txt").write_text("1"), kind="t")
    assert tree(tmp_path / "empty") == {"x.txt": b"1",
                                        MANIFEST: b'{\n "outputs": {\n  "t": [\n   "x.txt"\n  ]\n }\n}\n'}


# --- the feature cache -------------------------------------------------------------------------------------------

class CountingProvider:
    """A text provider whose features are the lengths of the texts (and ones), counting its calls."""

    name, modality, preprocessing = "fake", "text", "none"

    def __init__(self):
        self.calls = 0

    def features(self, items):
        self.calls += 1
        return np.array([[len(t), 1.0] for t in items], dtype=np.float32)


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "empty", "not numpy"])
def test_damaged_cache_entry_is_recomputed_with_a_warning(tmp_path, damage):
    """Each damage: a warning naming the file, the features recomputed (right values), the entry rewritten good."""
    ds = Dataset("tiny", "text", ["a", "bb", "ccc", "dddd"], np.array([0, 1, 0, 1]), ("x", "y"))
    provider, cache = CountingProvider(), FeatureCache(tmp_path)
    first = extract(provider, ds, cache=cache, progress=False)
    path = cache.path(first.key)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 5])
    elif damage == "flip a byte":  # same size, a changed value: only the checksum sees it
        path.write_bytes(data[:-4] + bytes([data[-4] ^ 0x40]) + data[-3:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("hello")
    with pytest.warns(UserWarning, match=f"feature cache: {path} is damaged .*; removing it and recomputing"):
        again = extract(provider, ds, cache=cache, progress=False)
    expected = np.array([[1, 1], [2, 1], [3, 1], [4, 1]], dtype=np.float32)
    assert provider.calls == 2 and not again.cached
    np.testing.assert_array_equal(again.features, expected)
    third = extract(provider, ds, cache=cache, progress=False)  # the rewritten entry is good again
    assert third.cached and provider.calls == 2
    np.testing.assert_array_equal(third.features, expected)


# --- error reporting ---------------------------------------------------------------------------------------------

def test_user_error_is_one_line_debug_shows_the_traceback(two_tables, tmp_path, capsys):
    a, _ = two_tables
    args = ["evaluate", "--split", "loo", "--pairs", str(a), "--strategies", "nonsense", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("recommender evaluate: error: unknown strategy 'nonsense'")
    assert main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "UserError: unknown strategy" in err
    assert err.strip().splitlines()[-1].startswith("recommender evaluate: error: unknown strategy 'nonsense'")
    assert not (tmp_path / "o").exists()


def test_internal_error_shows_its_traceback(two_tables, tmp_path, monkeypatch, capsys):
    """A bug (here a KeyError from inside) is not dressed up as the user's error: traceback and exit 1."""
    a, _ = two_tables

    def broken(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(evaluation_pipeline, "check_pairs", broken)  # the pipeline evaluate runs checks the pairs
    assert main(["evaluate", "--split", "loo", "--pairs", str(a), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err and "in broken" in err
    assert err.strip().splitlines()[-1] == ("recommender evaluate: internal error: KeyError: 'no such key' (a bug; "
                                            "please report it with the traceback above)")
    assert not (tmp_path / "o").exists()


def test_version():
    out = subprocess.run([sys.executable, "-m", "recommender.cli", "--version"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("recommender ") and out.split()[1][0].isdigit()


# --- plots -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_eval():
    """An evaluation where score:logme lacks every score on two of five datasets and imagenet ranks half the models."""
    pairs = pair_table(n_datasets=5, n_models=8).rename(columns={"score_good": "score_logme"})
    pairs.loc[pairs["dataset"].isin(["d3", "d4"]), "score_logme"] = np.nan
    pairs.loc[pairs["model"].isin(["m0", "m2", "m4", "m6"]), "imagenet_top1"] = np.nan
    names = ["oracle", "random", "imagenet", "score:logme", "lr"]
    ev = evaluate(make_folds(pairs, "loo"), {n: make_strategy(n, (1, 3, 5)) for n in names}, budgets=(1, 3, 5))
    return pairs, ev


def legend_entries(fig) -> dict[str, object]:
    """Legend label -> the data line of that strategy."""
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    return {label: handle[0] for handle, label in zip(handles, labels, strict=True)}


def test_regret_plot_ticks_only_at_measured_budgets_and_legend_gives_n(small_eval):
    _, ev = small_eval
    fig = regret_figure(ev.summary())
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1, 3, 5] and [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "5"]
    assert ax.get_xticks(minor=True).size == 0
    entries = legend_entries(fig)
    # n by hand: logme has scores on 3 of the 5 datasets; every other strategy covers all 5
    assert set(entries) == {"oracle (oracle, n=5)", "random (random, n=5)", "imagenet (agnostic, n=5)",
                            "score:logme (task-aware score, n=3)", "lr (learned, n=5)"}
    for line in entries.values():  # markers at the budgets; no solid line suggesting values between them
        assert line.get_linestyle() == ":" and line.get_linewidth() <= 1 and line.get_marker() not in ("", "None")
    assert "95% bootstrap interval" in " ".join(t.get_text() for t in fig.texts)


def test_family_colour_is_fixed_across_reports(small_eval):
    """Two reports with other strategies in another order give each family the same colour."""
    pairs, ev = small_eval
    other = evaluate(make_folds(pairs, "loo"), {n: make_strategy(n, (1, 3)) for n in ["lr", "score:bad", "random"]},
                     budgets=(1, 3))
    first = {label.split(" (")[0]: line.get_color() for label, line in
             legend_entries(regret_figure(ev.summary())).items()}
    second = {label.split(" (")[0]: line.get_color() for label, line in
              legend_entries(regret_figure(other.summary())).items()}
    assert first["lr"] == second["lr"] == FAMILY_COLOURS["learned"] == "#D55E00"
    assert first["random"] == second["random"] == "#7F7F7F"
    assert first["score:logme"] == second["score:bad"] == FAMILY_COLOURS["task-aware score"]
    assert len(set(first.values())) == len(first)  # five families, five colours


def test_scatter_grid_panels_axes_and_picks(small_eval):
    pairs, ev = small_eval
    fig = scatter_figure(ev.predictions, ev.results, "d1", budget=3)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in panels] == ["ImageNet top-1 (%)", "LogME", "LR prediction (z within dataset)"]
    for ax in panels:
        box = ax.get_position()
        assert box.width * fig.get_figwidth() >= 3 and box.height * fig.get_figheight() >= 3
    logme = panels[1]
    picks = logme.collections[1].get_offsets()
    d1 = pairs[pairs["dataset"] == "d1"]
    top3 = d1.nlargest(3, "score_logme")
    assert sorted(map(tuple, np.asarray(picks))) == sorted(zip(top3["score_logme"], top3["performance"], strict=True))
    assert "4 of 8 models unranked" in panels[0].get_title()


def test_scatter_grid_texts_never_overlap(small_eval):
    """The grid's fixed margins (no `tight_layout`) hold 3-line titles, axis and tick labels: on a 3 x 3 grid of
    seven panels, no two texts of the figure (suptitle, key, titles, axis labels, tick labels) overlap, none leaves
    the figure, and no text overlaps another panel's axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    _, ev = small_eval
    names = {"lr": ["lr", "lr+logme", "fm", "auto", "mean-perf"]}  # copies of lr's rows under other names
    preds = pd.concat([ev.predictions] + [ev.predictions[ev.predictions["strategy"] == "lr"].assign(strategy=n)
                                          for n in names["lr"][1:]], ignore_index=True)
    results = pd.concat([ev.results] + [ev.results[ev.results["strategy"] == "lr"].assign(strategy=n)
                                        for n in names["lr"][1:]], ignore_index=True)
    fig = scatter_figure(preds, results, "d1", budget=3)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # places the tick labels
    renderer = canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 7 and len(panels[0].get_title().splitlines()) == 3  # the unranked note: a third line
    texts = [(None, t) for t in (fig._suptitle, *fig.legends)]
    for i, ax in enumerate(panels):
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())  # ticks outside them are not drawn
        ticks = [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
        ticks += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
        texts += [(i, t) for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ticks) if t.get_text()]
    boxes = [(i, t.get_window_extent(renderer)) for i, t in texts]
    whole = fig.bbox
    for i, box in boxes:
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1
        for j, ax in enumerate(panels):
            if j != i:
                assert not box.overlaps(ax.get_window_extent(renderer))
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            if boxes[a][0] != boxes[b][0] or boxes[a][0] is None:  # texts of one panel: matplotlib places them
                assert not boxes[a][1].overlaps(boxes[b][1]), (texts[a][1], texts[b][1])
