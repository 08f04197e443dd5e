"""Benchmark `history init` against its floor: a bare `executemany` of the same rows into the same schema.

Usage: python experiments/bench_ingest.py [--repeats 3] [--out experiments/results/bench_ingest.md]

For 1/4, 1/2 and all of the bundled rows (the first rows of every bundled file but the alias and dataset tables,
written to a temporary bundle), each repeat loads the bundle into a fresh SQLite file as `history init` does
(`store_for_writing` + `load_bundled`: read, validate, check against the store, write), then copies the rows that
load stored into another fresh store of the same schema with one `executemany` per table on the bare `sqlite3`
connection, in one transaction: the floor. Both are timed in this process (wall and CPU seconds, median of the
repeats, after one untimed warm-up load that imports everything). `history init` itself, as a user runs it (a new
process: interpreter, imports, printing), is timed once on all the rows.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from recommender.history.bundled import ALIASES_FILE, BUNDLED, DATASETS_FILE, load_bundled, read_bundled
from recommender.history.queries import TABLES
from recommender.history.store import open_store, store_for_writing

FRACTIONS = (0.25, 0.5, 1.0)
WHOLE = {ALIASES_FILE, DATASETS_FILE}  # small tables every fraction keeps whole


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def bundle(fraction: float, folder: Path) -> Path:
    """The bundled files cut to their first `fraction` of rows, in `folder`."""
    folder.mkdir()
    for name in [ALIASES_FILE, *(spec.name for spec in BUNDLED)]:
        frame = read_bundled(name)
        if name not in WHOLE:
            frame = frame.head(math.ceil(len(frame) * fraction))
        frame.to_csv(folder / name, index=False)
    return folder


def init(directory: Path, db: Path) -> None:
    """What `history init` does: create the store and load the bundle, all or nothing."""
    with store_for_writing(str(db)) as store:
        load_bundled(store, directory)  # type: ignore[arg-type]  # a Path is a Traversable
    store.engine.dispose()


def floor(source: Path, db: Path) -> tuple[int, tuple[float, float]]:
    """Copy every row of `source` into a fresh store at `db` with one bare executemany per table: the rows copied
    and the (wall, CPU) seconds of the copy. The empty schema is made first, untimed."""
    open_store(str(db), create=True).engine.dispose()
    with sqlite3.connect(source) as reading:
        tables = {t: reading.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
    target = sqlite3.connect(db, isolation_level=None)

    def copy() -> None:
        target.execute("BEGIN IMMEDIATE")
        for table, rows in tables.items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                target.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        target.execute("COMMIT")

    seconds = timed(copy)
    target.close()
    return sum(map(len, tables.values())), seconds


def main() -> None:
    """Run the repeats per fraction, then `history init` in a new process; print and write a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_ingest.md"))
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        init(bundle(0.25, root / "warm"), root / "warm.db")
        rows = []
        for fraction in FRACTIONS:
            directory = bundle(fraction, root / f"b{fraction}")
            loads, floors, stored = [], [], 0
            for repeat in range(args.repeats):
                db = root / f"init-{fraction}-{repeat}.db"
                loads.append(timed(lambda db=db, directory=directory: init(directory, db)))
                stored, seconds = floor(db, root / f"floor-{fraction}-{repeat}.db")
                floors.append(seconds)
            wall, cpu = (statistics.median(t[i] for t in loads) for i in (0, 1))
            floor_wall, floor_cpu = (statistics.median(t[i] for t in floors) for i in (0, 1))
            rows.append((fraction, stored, wall, cpu, floor_wall, floor_cpu))
        db = root / "cli.db"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "recommender.cli", "history", "--db", str(db), "init"], check=True,
                       stdout=subprocess.DEVNULL)
        cli_wall = time.perf_counter() - start
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += [
        "# `history init` against a bare `executemany` (the floor)",
        "",
        f"`python experiments/bench_ingest.py --repeats {args.repeats}`: SQLite, median of {args.repeats} repeats in "
        f"one process after a warm-up; Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{load} at the end. Rows: every row stored (jobs, models, datasets, scores, aliases, protocol facts); the "
        "floor inserts exactly those rows into an empty store of the same schema in one transaction.",
        "",
        "| rows of the bundle | rows stored | init wall s | init CPU s | init rows/s | floor wall s | floor CPU s "
        "| floor rows/s | init / floor (wall) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fraction, stored, wall, cpu, floor_wall, floor_cpu in rows:
        lines.append(f"| {fraction:g} | {stored:,} | {wall:.2f} | {cpu:.2f} | {stored / wall:,.0f} | "
                     f"{floor_wall:.3f} | {floor_cpu:.3f} | {stored / floor_wall:,.0f} | {wall / floor_wall:.1f}x |")
    lines += ["", f"`recommender history --db X init` in a new process (all rows, once, with start-up and "
                  f"imports): **{cli_wall:.2f} s** wall."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
