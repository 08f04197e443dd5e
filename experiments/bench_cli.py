"""Benchmark the commands a practitioner runs in a loop, each against its floor measured in the same run.

Usage: python experiments/bench_cli.py [--repeats 3] [--skip-evaluate] [--out experiments/results/bench_cli.md]

Every command runs as a user runs it: a new process (`python -m recommender.cli ...`), timed for wall seconds and
for the CPU seconds of the child (user + system, from the OS's accounting of waited-for children); the median of
`--repeats` runs is reported. The floors:

- `recommend`, `next` and `rank` on cached features: a new process that only imports numpy and pandas; beside it,
  in this process, the bare numpy prediction of the saved FM on the same candidate matrix (the work proper);
- `history init`: a bare `executemany` of the rows that init stored, per table, into an empty store of the same
  schema on the plain sqlite3 connection (`bench_ingest.floor`);
- `evaluate --split loo` (SHiFT vision, lr, fm and mean-perf): the same folds' LR and FM fits alone, in this process,
  one after the other (the arithmetic that no runner, report or plot can avoid).

How cost grows: `recommend` for 1, 4 and 16 datasets in one call, and `evaluate` for the first 5, 10 and all 19
datasets of the split's folds.

The package's modules are compiled to bytecode first (`compileall`), as pip does when it installs the wheel:
otherwise, where Python writes no bytecode ($PYTHONDONTWRITEBYTECODE), every command would compile the package
again, which no installed copy does (numpy and pandas, the floor, come compiled).

`next` and `rank` fit `auto` on the store's history once per store revision and keep the fit (also under the
history's content, which a result logged on the dataset `next` ranks leaves as it was), and `recommend` and `next`
keep the pair table they start from ($RECOMMENDER_CACHE/fits and /pairs, here a folder of the run's own):
`recommend` and `next` are timed both with an empty cache (each run computes) and with what they keep (each run
reads it), and `next` right after `history ingest` logged one more result on its dataset (the loop of a user who
logs each fine-tuning job); `rank` with its features and the fit kept.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench_ingest import floor as executemany_floor

PROTOCOL, MODALITY = "vtab1k", "image"
CLI = [sys.executable, "-m", "recommender.cli"]


def run(argv: Sequence[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process, which must succeed; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of(repeats: int, action: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    """Median wall and median CPU seconds over the repeats."""
    times = [action() for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_prediction(db: str, model: str, dataset: str) -> tuple[float, float]:
    """The saved FM's prediction for every candidate model on ``dataset``, numpy alone: the encoded candidate
    matrix is built untimed, then only fm_scores is timed (median of 5)."""
    from recommender.history import open_store
    from recommender.models import load_recommender
    from recommender.models.fm import fm_scores

    est = load_recommender(model)
    pairs = open_store(db).pair_table(PROTOCOL, MODALITY)
    Z = est.encoder_.transform(pairs[pairs["dataset"] == dataset])
    weights = est.weights_  # type: ignore[attr-defined]  # an FM's fitted arrays
    return median_of(5, lambda: timed(lambda: fm_scores(Z, **weights)))


def fit_floor(db: str, n_datasets: int | None) -> tuple[float, float]:
    """One LR and one FM fit per leave-one-dataset-out fold (of the first ``n_datasets`` datasets), in this
    process: the fits the evaluation cannot avoid."""
    from recommender.history import open_store
    from recommender.models import make_recommender

    pairs = open_store(db).pair_table(PROTOCOL, MODALITY, select="test")
    datasets = sorted(pairs["dataset"].unique())[:n_datasets]
    pairs = pairs[pairs["dataset"].isin(datasets)]

    def fits() -> None:
        for held in datasets:
            train = pairs[pairs["dataset"] != held]
            for kind in ("lr", "fm"):
                make_recommender(kind).fit(train)

    return timed(fits)


def evaluate_argv(db: str, out: Path, datasets: Sequence[str] | None) -> list[str]:
    """`evaluate --split loo` on SHiFT vision with lr, fm and mean-perf: from the store, or with ``datasets``, from
    a pair-table file of the store's pairs on those datasets (written next to ``out``)."""
    source = ["--db", db, "--protocol", PROTOCOL, "--select", "test"]
    if datasets:  # a pair table is selected when it is made: by test value, as from the store
        from recommender.history import open_store

        pairs = open_store(db).pair_table(PROTOCOL, MODALITY, select="test")
        path = out.with_suffix(".csv")
        pairs[pairs["dataset"].isin(datasets)].to_csv(path, index=False)
        source = ["--pairs", str(path)]
    return [*CLI, "evaluate", *source, "--split", "loo", "--modality", MODALITY, "--strategies", "lr,fm,mean-perf",
            "--quiet", "--out", str(out)]


def main() -> None:
    """Set up a store and a saved FM, time each command and its floor, print and write a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-evaluate", action="store_true", help="leave out the evaluate rows (minutes)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_cli.md"))
    args = parser.parse_args()
    rows: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []  # command, floor, times
    import recommender

    compileall.compile_dir(Path(recommender.__file__).parent, quiet=1)  # as an installed wheel is
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["RECOMMENDER_CACHE"] = str(root / "cache")  # the commands' caches: empty, and the run's own
        kept = root / "cache"
        db = f"sqlite:///{root / 'history.db'}"
        init = run([*CLI, "history", "--db", db, "init"])  # also the store every later row reads
        init_inits = [init] + [run([*CLI, "history", "--db", f"sqlite:///{root / f'init{i}.db'}", "init"])
                               for i in range(1, args.repeats)]
        init_time = (statistics.median(t[0] for t in init_inits), statistics.median(t[1] for t in init_inits))
        stored, floor_time = executemany_floor(root / "history.db", root / "floor.db")
        rows.append(("`history init`", f"bare executemany of its {stored:,} rows", init_time, floor_time))

        model = str(root / "fm-vision")
        run([*CLI, "train", "--db", db, "--recommender", "fm", "--protocol", PROTOCOL, "--modality", MODALITY,
             "--out", model])
        imports = median_of(args.repeats, lambda: run([sys.executable, "-c", "import numpy, pandas"]))
        observed = root / "observed.csv"
        observed.write_text("model,dataset,performance\ngoogle/vit-base-patch16-224,my-pets,0.91\n"
                            "facebook/deit-small-patch16-224,my-pets,0.88\n")
        from recommender.history import open_store

        names = sorted(open_store(db).pair_table(PROTOCOL, MODALITY)["dataset"].unique())
        def recommend_first() -> tuple[float, float]:
            shutil.rmtree(kept, ignore_errors=True)
            return run([*CLI, "recommend", "--db", db, "--model", model, "--dataset", names[0], "--top-k", "5"])

        rows.append(("`recommend` (1 dataset), nothing kept: the pair table computed", "`import numpy, pandas`",
                     median_of(args.repeats, recommend_first), imports))
        for n in (1, 4, 16):
            which = ["--dataset", names[0]] if n == 1 else ["--datasets", ",".join(names[:n])]
            times = median_of(args.repeats, lambda which=which: run(
                [*CLI, "recommend", "--db", db, "--model", model, *which, "--top-k", "5"]))
            rows.append((f"`recommend` ({n} dataset{'s' if n > 1 else ''})", "`import numpy, pandas`", times,
                         imports))
        rows.append(("(in-process) the FM's bare numpy prediction, one dataset", "-",
                     bare_prediction(db, model, names[0]), (np.nan, np.nan)))
        def next_with(strategy: str, cached: bool = True) -> tuple[float, float]:
            if not cached:
                shutil.rmtree(kept, ignore_errors=True)
            return run([*CLI, "next", "--db", db, "--dataset", "my-pets", "--modality", MODALITY, "--observed",
                        str(observed), "--budget", "3", "--strategy", strategy])

        rows.append(("`next --strategy auto` (2 observed results), nothing kept: fits on the history",
                     "`import numpy, pandas`", median_of(args.repeats, lambda: next_with("auto", cached=False)),
                     imports))
        next_with("auto")  # keeps the fit
        rows.append(("`next --strategy auto` (2 observed results), the fit and pair table kept",
                     "`import numpy, pandas`", median_of(args.repeats, lambda: next_with("auto")), imports))
        rows.append(("`next --strategy similarity` (2 observed results)", "`import numpy, pandas`",
                     median_of(args.repeats, lambda: next_with("similarity")), imports))
        store = open_store(db)
        metric, tried = store.default_metric(PROTOCOL), iter(store.pair_table(PROTOCOL, MODALITY)["model"].unique())

        def next_after_logging() -> tuple[float, float]:
            """One more result on my-pets logged by `history ingest` (untimed), then `next` on what the store holds:
            the pair table is computed again, auto's fit read by its history's content."""
            job = root / "job.csv"
            job.write_text(f"model,dataset,protocol,metric,value\n{next(tried)},my-pets,{PROTOCOL},{metric},0.8\n")
            run([*CLI, "history", "--db", db, "ingest", str(job), "--quiet"])
            return run([*CLI, "next", "--db", db, "--dataset", "my-pets", "--modality", MODALITY, "--budget", "3"])

        rows.append(("`next` (auto) right after `history ingest` of one more result on the dataset",
                     "`import numpy, pandas`", median_of(args.repeats, next_after_logging), imports))
        rank = [*CLI, "rank", "--db", db, "--data", "bbc_news", "--n", "300", "--zoo", "text-offline", "--scores",
                "logme,hscore_reg,lfc,parc", "--top-k", "3", "--cache", str(root / "features"), "--quiet"]
        run(rank)  # fills the feature cache and keeps auto's fit
        rows.append(("`rank` text-offline zoo on 300 BBC News texts, features and fit kept", "`import numpy, pandas`",
                     median_of(args.repeats, lambda: run(rank)), imports))
        if not args.skip_evaluate:
            for n in (5, 10, None):
                chosen = names[:n] if n else None
                times = run(evaluate_argv(db, root / f"evaluate-{n}", chosen))
                rows.append((f"`evaluate --split loo` lr, fm, mean-perf, {n or len(names)} datasets (once)",
                             "the folds' LR and FM fits alone", times, fit_floor(db, n)))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = ["# The loop commands against their floors", "",
             f"`python experiments/bench_cli.py --repeats {args.repeats}`: each command a new process, median of "
             f"{args.repeats} (evaluate: once); Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load "
             f"average {load} at the end. CPU: user + system seconds of the command's process and its children.", "",
             "| command | floor | wall s | CPU s | floor wall s | floor CPU s | wall / floor |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for command, what, (wall, cpu), (fwall, fcpu) in rows:
        ratio = f"{wall / fwall:.1f}x" if np.isfinite(fwall) and fwall > 0 else "-"
        floor_cells = f"{fwall:.3f} | {fcpu:.3f}" if np.isfinite(fwall) else "- | -"
        lines.append(f"| {command} | {what} | {wall:.3f} | {cpu:.3f} | {floor_cells} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
