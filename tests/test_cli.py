"""`recommender` main: expected errors as prefixed lines with exit code 2, no traceback; CSV headers in `score`."""

import json
import socket

import numpy as np
import pytest
from pair_tables import quality_pairs as pair_table

import recommender.scores.registry
from recommender.arrays import load_array
from recommender.cli import main
from recommender.history.store import IngestError


def run_main(argv: list[str], capsys: pytest.CaptureFixture) -> list[str]:
    """main's stderr lines, after checking it exited with 2 and printed no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if ": error: " in line]  # not evaluate's progress lines
    assert lines and all(line.startswith(f"recommender {argv[0]}: error: ") for line in lines)
    return lines


def free_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_database_scheme(capsys):
    """An unknown URL scheme: one line naming it."""
    (line,) = run_main(["history", "--db", "nosuch://x", "stats"], capsys)
    assert "unsupported store backend 'nosuch'" in line


def test_postgres_with_nothing_listening(capsys):
    """SQLAlchemy's OperationalError: only the first line of its long message."""
    pytest.importorskip("psycopg")
    (line,) = run_main(["history", "--db", f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x", "stats"], capsys)
    assert "OperationalError" in line and "refused" in line


def test_output_below_a_file(tmp_path, capsys):
    """--out inside a path that is a file: one line naming the file, before any evaluation."""
    pairs = tmp_path / "pairs.csv"
    pair_table(n_datasets=3, n_models=4).to_csv(pairs, index=False)
    (tmp_path / "afile").write_text("x")
    (line,) = run_main(["evaluate", "--split", "loo", "--pairs", str(pairs), "--strategies", "random",
                        "--budgets", "1", "--out", str(tmp_path / "afile" / "out")], capsys)
    assert line.endswith(f"out: {tmp_path / 'afile'} is a file, not a folder")


def test_corrupt_image(tmp_path, capsys):
    """PIL's UnidentifiedImageError (an OSError) while reading an image folder."""
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        (tmp_path / "imgs" / label / "1.png").write_bytes(b"not an image")
    (line,) = run_main(["rank", "--data", str(tmp_path / "imgs"), "--models", "nosuch", "--no-cache",
                        "--db", f"sqlite:///{tmp_path / 's.db'}"], capsys)
    assert "cannot identify image" in line


def test_corrupt_npz(tmp_path, capsys):
    """zipfile.BadZipFile (not an OSError): a truncated .npz."""
    whole = tmp_path / "whole.npz"
    np.savez(whole, f=np.ones((10, 3)))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(whole.read_bytes()[:100])
    (line,) = run_main(["score", "--features", str(bad), "--labels", str(bad)], capsys)
    assert "zip" in line.lower()


def score_failing_with(exc: Exception, tmp_path, monkeypatch) -> list[str]:
    """Arguments of a `score` run on small files whose scoring raises exc."""
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(recommender.scores.registry, "score_all", fail)
    np.save(tmp_path / "f.npy", np.ones((4, 2)))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    return ["score", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy")]


@pytest.mark.parametrize("exc", [KeyError("score_logme"), ValueError("x"), TypeError("y")])
def test_other_errors_are_internal_and_show_their_traceback(exc, tmp_path, monkeypatch, capsys):
    """KeyError, ValueError and the like are bugs, not user errors: exit 1, the traceback and an 'internal error'."""
    assert main(score_failing_with(exc, tmp_path, monkeypatch)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.strip().splitlines()[-1].startswith(f"recommender score: internal error: {type(exc).__name__}: ")


def test_multi_line_message_prefixes_every_problem(tmp_path, monkeypatch, capsys):
    """An error listing problems prints each on its own prefixed line."""
    problems = ["a.csv: row 1: model: missing model", "a.csv: row 2: value: not a number"]
    lines = run_main(score_failing_with(IngestError(problems), tmp_path, monkeypatch), capsys)
    assert [line.split("error: ", 1)[1] for line in lines] == ["2 problem(s), nothing ingested:", *problems]


@pytest.mark.parametrize("text, expected", [
    ("cat\ndog\ncat\ndog\n", ["cat", "dog", "cat", "dog"]),  # header-less string labels keep their first row
    ("label\ncat\ndog\n", ["cat", "dog"]),  # a usual column name
    ("animal\n0\n1\n", [0, 1]),  # numbers below a name
])
def test_csv_header_without_a_row_count(tmp_path, text, expected):
    """Without expect_rows, a first row is a header only when named like one or above numbers."""
    (tmp_path / "y.csv").write_text(text)
    assert load_array(tmp_path / "y.csv").tolist() == expected


def test_csv_header_decided_by_the_row_count(tmp_path):
    """With expect_rows, a non-numeric first row is a header exactly when the rest has that many rows."""
    (tmp_path / "y.csv").write_text("animal\ncat\ndog\ncat\n")
    assert load_array(tmp_path / "y.csv", expect_rows=3).tolist() == ["cat", "dog", "cat"]
    assert load_array(tmp_path / "y.csv", expect_rows=4).tolist() == ["animal", "cat", "dog", "cat"]


@pytest.mark.parametrize("header", ["", "animal\n"])
def test_score_reads_string_labels_with_or_without_header(tmp_path, capsys, header):
    """`score` passes the feature rows to the label loader: both CSVs give the same six labels and score."""
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(6, 3)))
    (tmp_path / "y.csv").write_text(header + "cat\ndog\ncat\ndog\ncat\ndog\n")
    assert main(["score", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.csv"),
                 "--metrics", "logme", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["score"] == "logme" and np.isfinite(record["value"])
