"""Attacks on files (round 3): re-runs into folders holding the user's files, the store or a link; `.` as the
output; files left by killed runs; and one line, exit 2, for every bad file a loader is handed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pair_tables import quality_pairs
from recommend_helpers import fitted

from recommender.cli import main
from recommender.files import MANIFEST, write_atomic, write_output_folder
from recommender.history import open_store
from recommender.history.ingest import ingest_file

DATA = Path(__file__).parents[1] / "data" / "history"
ZOO = DATA / "small_zoos_long.csv"  # 8 jobs of 4 models on 2 datasets
KINDS = ["dataset_aliases", "datasets", "jobs", "models", "protocols", "scores"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    """Run the CLI: exit code and stderr lines."""
    code = main(argv)
    return code, capsys.readouterr().err.splitlines()


def make_store(path: Path) -> Path:
    """A SQLite store at `path` holding the 8 zoo jobs."""
    store = open_store(str(path), create=True)
    assert ingest_file(store, ZOO, constants={"protocol": "full-finetune"}) == {"models": 4, "jobs": 8}
    store.engine.dispose()
    return path


def export(db: Path, folder: Path | str, *extra: str) -> list[str]:
    return ["history", "--db", str(db), "export", str(folder), *extra]


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


# ---- item 5: a re-run keeps the user's files ----------------------------------------------------------------------
def test_export_rerun_keeps_the_users_notebook(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """export, the user adds a notebook, export again: the notebook is kept byte for byte, the CSVs are new."""
    db = make_store(tmp_path / "h.db")
    out = tmp_path / "out1"
    assert main(export(db, out)) == 0
    (out / "my_analysis.ipynb").write_bytes(b'{"cells": []}')
    (out / "jobs.csv").write_text("stale")  # our own file, edited: a re-run replaces it
    assert main(export(db, out)) == 0
    assert (out / "my_analysis.ipynb").read_bytes() == b'{"cells": []}'
    assert len(pd.read_csv(out / "jobs.csv")) == 8
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == {"outputs": {"history export": sorted(f"{k}.csv" for k in KINDS)}}


def test_evaluate_rerun_keeps_the_users_notes_and_drops_its_own_stale_files(tmp_path: Path) -> None:
    """evaluate over 5 datasets, the user adds NOTES.md, evaluate over 3: NOTES.md is kept, the two scatters of
    the first run that the second does not write are removed."""
    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "out"
    quality_pairs(n_datasets=5, n_models=6).to_csv(a, index=False)
    quality_pairs(n_datasets=3, n_models=6, seed=1).to_csv(b, index=False)
    args = ["evaluate", "--split", "loo", "--strategies", "oracle,random", "--budgets", "1", "--out", str(out)]
    assert main([*args, "--pairs", str(a)]) == 0
    (out / "NOTES.md").write_text("my notes")
    (out / "scatter" / "mine.png").write_bytes(b"my plot")
    assert main([*args, "--pairs", str(b)]) == 0
    assert (out / "NOTES.md").read_text() == "my notes"
    assert sorted(p.name for p in (out / "scatter").iterdir()) == ["d0.png", "d1.png", "d2.png", "mine.png"]
    assert set(pd.read_csv(out / "results.csv")["dataset"]) == {"d0", "d1", "d2"}


def test_a_manifest_cannot_reach_out_of_its_folder(tmp_path: Path) -> None:
    """A manifest edited to list ../victim.txt, an absolute path and a folder: none of them is touched."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("keep")
    write_output_folder(out, lambda part: (part / "a.txt").write_text("1"), kind="t")
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"outputs": {"t": ["a.txt", "../victim.txt", str(victim), "sub"]}}))
    write_output_folder(out, lambda part: (part / "b.txt").write_text("2"), kind="t")
    assert victim.read_text() == "keep" and (out / "sub" / "keep.txt").read_text() == "keep"
    assert sorted(tree(out)) == [MANIFEST, "b.txt", "sub/keep.txt"]


# ---- item 6: the store inside the export folder -------------------------------------------------------------------
def test_export_overwrite_into_the_stores_own_folder_keeps_the_store(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """`export sub --overwrite` where sub/ holds the store: the store is kept byte for byte and still opens; a
    store whose file has an exported name is refused in one line."""
    sub = tmp_path / "sub"
    sub.mkdir()
    db = make_store(sub / "history.db")
    before = db.read_bytes()
    assert main(export(db, sub, "--overwrite")) == 0
    names = sorted(p.name for p in sub.iterdir() if not p.name.startswith("history.db-"))  # SQLite's WAL files
    assert names == sorted([MANIFEST, "history.db", *(f"{k}.csv" for k in KINDS)])
    assert db.read_bytes() == before and len(open_store(str(db)).jobs()) == 8

    other = tmp_path / "other"
    other.mkdir()
    named = make_store(other / "jobs.csv")  # a SQLite store named like an export file
    before = named.read_bytes()[:16]
    code, err = cli(export(named, other, "--overwrite"), capsys)
    assert (code, err) == (2, [f"recommender history: error: {named} is the store being exported; give another "
                               "folder"])
    assert named.read_bytes()[:16] == before == b"SQLite format 3\0" and len(open_store(str(named)).jobs()) == 8
    assert [p.name for p in other.iterdir() if not p.name.startswith("jobs.csv-")] == ["jobs.csv"]


# ---- item 13 and `.`: a linked folder, the current folder -----------------------------------------------------------
def test_export_into_a_linked_folder_writes_through_the_link(tmp_path: Path) -> None:
    db = make_store(tmp_path / "h.db")
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    (real / "mine.txt").write_text("keep")
    link.symlink_to(real, target_is_directory=True)
    for _ in range(2):
        assert main(export(db, link)) == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert sorted(p.name for p in real.iterdir()) == sorted([MANIFEST, "mine.txt", *(f"{k}.csv" for k in KINDS)])
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("h.db-")) == ["h.db", "link", "real"]


def test_a_link_inside_the_folder_is_not_followed_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """out/scatter linked to a folder elsewhere: a report's scatters would land there; refused in one line."""
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "out"
    elsewhere.mkdir()
    out.mkdir()
    (out / "scatter").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match=r"scatter/d0.png: a link or file in the way of .*scatter; give another"):
        write_output_folder(out, lambda part: ((part / "scatter").mkdir(), (part / "scatter" / "d0.png").touch()),
                            kind="t")
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["scatter"]


def test_export_and_evaluate_into_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`export . --overwrite` and `evaluate --out . --overwrite` write into the current folder."""
    db = make_store(tmp_path / "h.db")
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    monkeypatch.chdir(work)
    assert main(export(db, ".", "--overwrite")) == 0
    assert main(export(db, ".")) == 0
    quality_pairs(n_datasets=3, n_models=6).to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["evaluate", "--split", "loo", "--pairs", str(tmp_path / "pairs.csv"), "--strategies", "oracle",
                 "--budgets", "1", "--out", ".", "--overwrite"]) == 0
    names = {p.name for p in work.iterdir()}
    assert {"mine.txt", "jobs.csv", "report.md", "results.csv", MANIFEST} <= names
    assert not [n for n in names if ".part-" in n or ".old-" in n]
    assert set(json.loads((work / MANIFEST).read_text())["outputs"]) == {"history export", "evaluate"}


# ---- killed runs: stale temporary files ---------------------------------------------------------------------------
def test_a_later_run_removes_what_killed_runs_left_and_nothing_else(tmp_path: Path) -> None:
    """Temporary names of a process that has ended are removed; a live process's, another host's, the user's own
    `.part-*` names are kept."""
    from recommender.files import _HOST

    out = tmp_path / "out"
    out.mkdir()
    dead = dead_pid()
    stale_folder = out / f".recommender-part-{_HOST}-{dead}-0123abcd"
    stale_folder.mkdir()
    (stale_folder / "jobs.csv").write_text("half")
    stale_file = out / f".part-{_HOST}-{dead}-89abcdef-x.txt"
    stale_file.write_text("half")
    kept = [out / f".recommender-part-{_HOST}-{os.getpid()}-0123abcd",  # a live process (this one)
            out / f".part-ffffff-{dead}-89abcdef-x.txt" if _HOST != "ffffff" else out / ".part-x-y.txt",
            out / ".part-mine.txt"]  # the user's own name
    for path in kept:
        path.write_text("keep")
    other = out / f".part-{_HOST}-{dead}-89abcdef-other.txt"  # left while writing another file
    other.write_text("half")
    write_atomic(out / "x.txt", lambda part: part.write_text("new"))
    assert not stale_file.exists() and (out / "x.txt").read_text() == "new"
    assert stale_folder.exists() and other.exists()  # write_atomic cleans its own file's temporaries only
    write_output_folder(out, lambda part: (part / "y.txt").write_text("1"), kind="t")
    assert not stale_folder.exists() and not other.exists()  # an output folder is cleaned whole
    assert all(path.read_text() == "keep" for path in kept)


# ---- item 7: one line naming the file for every bad array file ----------------------------------------------------
def _npy_bytes(array) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _claiming_header(shape: tuple[int, ...]) -> bytes:
    """An .npy header that declares float64 of `shape` (no data after it)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _bad_array_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad file and the end of its one error line."""
    import zipfile

    import numpy as np

    good = _npy_bytes(np.ones((10, 3)))
    files = {"corrupt.npy": good[:100], "garbage.npy": b"hello, not numpy",
             "object.npy": _npy_bytes(np.array([1, "a", None], dtype=object)),
             "huge.npy": _claiming_header((10**13,)) + b"\0" * 8,
             "short.npy": good[:-8], "notzip.npz": b"not a zip", "corrupt.parquet": b"PAR1 garbage PAR1"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(folder / "object.npz", "w") as archive:
        archive.writestr("a.npy", files["object.npy"])
    with zipfile.ZipFile(folder / "raw.npz", "w") as archive:
        archive.writestr("a.npy", b"raw bytes, no header")
    objects = ("holds Python objects (dtype object), which are never loaded because loading them can run code; "
               "save numbers or text")
    cases = {
        "corrupt.npy": "not an .npy array (EOF: reading array header, expected 118 bytes got 90)",
        "garbage.npy": "not an .npy array (the magic string is not correct; expected b'\\x93NUMPY', got b'hello,')",
        "object.npy": objects,
        "huge.npy": "truncated: its header declares float64[10000000000000] (80000000000000 bytes) but 8 bytes "
                    "follow",
        "short.npy": "truncated: its header declares float64[10, 3] (240 bytes) but 232 bytes follow",
        "notzip.npz": "not an .npz archive",
        "object.npz": "array a: " + objects,
        "raw.npz": "array a: not an .npy array (the magic string is not correct; expected b'\\x93NUMPY', got "
                   "b'raw by')",
        "corrupt.parquet": "not a readable Parquet file (Could not open Parquet input source",
    }
    return {name: (folder / name, end) for name, end in cases.items()}


def test_score_gives_one_line_naming_each_bad_array_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(10) % 2)
    cases = _bad_array_files(tmp_path)
    for name, (path, end) in cases.items():
        before = path.read_bytes()
        code, err = cli(["score", "--features", str(path), "--labels", str(labels)], capsys)
        assert code == 2 and len(err) == 1, (name, err)
        assert err[0].startswith(f"recommender score: error: {path}: {end}"), (name, err)
        assert path.read_bytes() == before
    # as labels too (after good features): the same loader
    np.save(tmp_path / "feats.npy", np.random.default_rng(0).normal(size=(10, 3)))
    path, end = cases["object.npz"]
    code, err = cli(["score", "--features", str(tmp_path / "feats.npy"), "--labels", str(path)], capsys)
    assert (code, err) == (2, [f"recommender score: error: {path}: {end}"])


# ---- item 7: a saved recommender's weights --------------------------------------------------------------------------
@pytest.fixture()
def lr_folder(tmp_path: Path) -> Path:
    """A small LR saved on d,m."""
    return fitted("lr", "d,m").save(tmp_path / "model", training={"protocol": "full-finetune"})


def _pin(folder: Path) -> None:
    """Write weights.npz's checksum into the metadata, as a careful attacker would."""
    import hashlib

    meta = json.loads((folder / "recommender.json").read_text())
    meta["weights"]["sha256"] = hashlib.sha256((folder / "weights.npz").read_bytes()).hexdigest()
    (folder / "recommender.json").write_text(json.dumps(meta))


def _recommend_fails(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    db = tmp_path / "no-store.db"
    code, err = cli(["recommend", "--model", str(folder), "--dataset", "dtd", "--db", str(db)], capsys)
    assert code == 2 and len(err) == 1 and not db.exists(), err
    return err[0]


@pytest.mark.parametrize("member", ["raw bytes", "claims 10^12 float64"])
def test_a_weights_member_is_checked_from_its_header(lr_folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture, member: str) -> None:
    """A member of raw bytes, and one whose .npy header claims 10^12 float64 (8 TB): one line, nothing
    allocated."""
    import zipfile

    import numpy as np

    weights = lr_folder / "weights.npz"
    with np.load(weights) as archive:
        arrays = {name: archive[name] for name in archive.files}
    width = len(arrays["coef"])
    with zipfile.ZipFile(weights, "w") as archive:
        archive.writestr("intercept.npy", _npy_bytes(arrays["intercept"]))
        if member == "raw bytes":
            archive.writestr("coef.npy", arrays["coef"].tobytes())
        else:
            archive.writestr("coef.npy", _claiming_header((10**12,)) + b"\0" * 64)
    _pin(lr_folder)
    line = _recommend_fails(lr_folder, tmp_path, capsys)
    expected = (f"{weights}: array coef: not an .npy array (the magic string is not correct;" if member == "raw bytes"
                else f"{weights}: array coef is float64[1000000000000], expected float64[{width}]")
    assert line.startswith(f"recommender recommend: error: {expected}"), line


def test_a_weights_link_to_a_huge_file_is_refused_before_hashing(lr_folder: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """weights.npz linked to a sparse 8 GB file: refused from its size, never read."""
    import recommender.models.saved as saved

    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(8 << 30)  # sparse: no disk used
    (lr_folder / "weights.npz").unlink()
    (lr_folder / "weights.npz").symlink_to(big)

    def no_hashing(path: Path) -> str:
        raise AssertionError("hashed")

    monkeypatch.setattr(saved, "file_sha256", no_hashing)
    line = _recommend_fails(lr_folder, tmp_path, capsys)
    assert line.startswith(f"recommender recommend: error: {lr_folder / 'weights.npz'}: {8 << 30} bytes, more than ")


# ---- item 7: model folders ------------------------------------------------------------------------------------------
class _Evil:
    """A pickle that would call print if unpickled without weights_only."""

    def __reduce__(self):
        return (print, ("ran",))


def _tiny_bert(folder: Path) -> Path:
    """A tiny BERT model folder (config.json, model.safetensors, tokenizer) saved by transformers."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "is", "good"]
    vocab = folder.parent / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    config = BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16)
    BertModel(config).save_pretrained(folder)
    BertTokenizerFast(str(vocab)).save_pretrained(folder)
    return folder


def test_bad_model_folders_give_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A pytorch_model.bin torch's weights_only refuses, a garbage model.safetensors, a config.json that is a list:
    each one line naming the file; the good folder gives features (the control)."""
    import torch

    from recommender.errors import UserError
    from recommender.zoo.zoos import get_provider

    good = _tiny_bert(tmp_path / "good")
    assert get_provider(str(good)).features(["the cat", "a dog is good"]).shape == (2, 8)
    pickled = _tiny_bert(tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    torch.save({"x": _Evil()}, pickled / "pytorch_model.bin")
    garbage = _tiny_bert(tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"{garbage" + b"x" * 50)
    listed = _tiny_bert(tmp_path / "listed")
    (listed / "config.json").write_text("[1, 2]")
    deep = _tiny_bert(tmp_path / "deep")
    (deep / "config.json").write_text("[" * 100_000)
    cases = {
        garbage: f"{garbage / 'model.safetensors'}: not a readable safetensors file (Error while deserializing "
                 "header: invalid JSON in header",
        listed: f"{listed / 'config.json'}: must be a JSON object, got list",
        deep: f"{deep / 'config.json'}: not valid JSON (RecursionError)",
    }
    for folder, start in cases.items():
        with pytest.raises(UserError) as caught:
            get_provider(str(folder)).features(["the cat", "a dog"])
        assert str(caught.value).startswith(start) and "\n" not in str(caught.value)
    # through the CLI: exit 2, one line, nothing run
    capsys.readouterr()  # transformers' progress bars while saving
    code, err = cli(["rank", "--data", "austen", "--n", "40", "--models", str(pickled), "--cache",
                     str(tmp_path / "cache")], capsys)
    assert (code, err) == (2, [f"recommender rank: error: {pickled / 'pytorch_model.bin'}: holds a pickled object, "
                               "not plain tensors, refused (Unsupported global print)"])
    assert "ran" not in capsys.readouterr().out


# ---- item 7: the feature cache drops a bad entry ---------------------------------------------------------------------
class _CountingProvider:
    name, modality, preprocessing = "fake", "text", "none"

    def __init__(self) -> None:
        self.calls = 0

    def features(self, items):
        import numpy as np

        self.calls += 1
        return np.array([[len(t), 1.0] for t in items], dtype=np.float32)


@pytest.mark.parametrize("damage", ["sidecar list", "sidecar deep", "npy is a folder", "sidecar is a folder"])
def test_a_bad_cache_entry_is_dropped_once_and_recomputed(tmp_path: Path, damage: str) -> None:
    """One warning, the features recomputed, the entry rewritten: the next read is a clean hit."""
    import numpy as np

    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.datasets import Dataset
    from recommender.zoo.extract import extract

    ds = Dataset("tiny", "text", ["a", "bb", "ccc"], np.array([0, 1, 0]), ("x", "y"))
    provider, cache = _CountingProvider(), FeatureCache(tmp_path)
    key = extract(provider, ds, cache=cache, progress=False).key
    path, meta = cache.path(key), cache.meta_path(key)
    if damage == "sidecar list":
        meta.write_text("[1, 2]")
    elif damage == "sidecar deep":
        meta.write_text("[" * 100_000)
    elif damage == "npy is a folder":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("1")
    else:
        meta.unlink()
        meta.mkdir()
    with pytest.warns(UserWarning, match=f"feature cache: {path} is damaged .*; removing it and recomputing"):
        again = extract(provider, ds, cache=cache, progress=False)
    assert provider.calls == 2 and not again.cached
    np.testing.assert_array_equal(again.features, [[1, 1], [2, 1], [3, 1]])
    third = extract(provider, ds, cache=cache, progress=False)
    assert third.cached and provider.calls == 2 and path.is_file() and meta.is_file()


# ---- item 7: finetune's arguments are checked when parsed -----------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "argument --batch-size: expected a whole number >= 1, got '0'"),
    (["--lrs", "-1"], "argument --lrs: expected learning rates > 0 separated by commas, got '-1'"),
    (["--lrs", "1e-3,nan"], "argument --lrs: expected learning rates > 0 separated by commas, got '1e-3,nan'"),
    (["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got '0'"),
    (["--patience", "-1"], "argument --patience: expected a whole number >= 0, got '-1'"),
    (["--protocol", "p" * 101], "argument --protocol: expected a protocol name of 1 to 100 characters, got 101"),
])
def test_finetune_arguments_are_refused_before_anything_loads(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                              message: str) -> None:
    import recommender.zoo.datasets as datasets

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded")

    monkeypatch.setattr(datasets, "load_dataset", no_loading)
    db = tmp_path / "h.db"
    with pytest.raises(SystemExit) as exited:
        main(["finetune", "--data", "tweets", "--model", "glove-6B-50d", "--db", str(db), *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"recommender finetune: error: {message}"
    assert not db.exists()


# ---- items 7 and 8: a Ray --address that is malformed or not Ray ----------------------------------------------------
def test_a_ray_address_without_a_port_is_one_line() -> None:
    from recommender.errors import UserError
    from recommender.executors import check_address

    for address in ("localhost", "ray://localhost", "localhost:http", "localhost:0", ":6379"):
        with pytest.raises(UserError) as caught:
            check_address(address)
        assert str(caught.value) == (f"--address {address}: expected HOST:PORT (as `ray start --head` prints), "
                                     "ray://HOST:PORT or auto")


@pytest.mark.parametrize("server", ["silent", "http/1"])
def test_a_server_that_is_not_ray_is_refused_within_seconds(server: str) -> None:
    """A local TCP server that accepts and says nothing, or answers as an HTTP/1 server: one line in under 5 s."""
    import socket
    import threading
    import time

    from recommender.errors import UserError
    from recommender.executors import check_address

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held = []

    def serve() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        if server == "http/1":
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(UserError) as caught:
            check_address(f"127.0.0.1:{port}", timeout=2.0)
    finally:
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert time.monotonic() - start < 5
    assert str(caught.value) == {
        "silent": f"--address 127.0.0.1:{port}: no Ray cluster answered there within 2 s",
        "http/1": f"--address 127.0.0.1:{port}: the server there is not Ray (it does not answer gRPC)"}[server]


@pytest.mark.skipif(not __import__("recommender.executors").executors.ray_installed(), reason="ray is not installed")
def test_finetune_with_a_ray_address_without_port_is_one_line(capsys: pytest.CaptureFixture) -> None:
    code, err = cli(["finetune", "--data", "tweets", "--model", "glove-6B-50d", "--executor", "ray", "--address",
                     "localhost", "--no-log"], capsys)
    assert (code, err) == (2, ["recommender finetune: error: --address localhost: expected HOST:PORT (as `ray "
                                    "start --head` prints), ray://HOST:PORT or auto"])


# ---- low: an image that cannot be decoded is named by its file or its row -----------------------------------------
def test_an_undecodable_image_names_its_file_or_row(tmp_path: Path) -> None:
    import io

    import numpy as np
    from PIL import Image

    from recommender.errors import UserError
    from recommender.zoo.datasets import load_dataset

    def png(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        (folder / label / "1.png").write_bytes(png(10))
    (folder / "b" / "2.png").write_bytes(b"not an image")
    with pytest.raises(UserError) as caught:
        load_dataset(folder)
    assert str(caught.value).startswith(f"{folder / 'b' / '2.png'}: not a readable image (cannot identify image file")
    assert "BytesIO" not in str(caught.value)

    table = tmp_path / "images.parquet"
    pd.DataFrame({"image": [png(1), png(2), png(3)[:30]], "label": ["a", "b", "a"]}).to_parquet(table)
    with pytest.raises(UserError, match=r"^dataset images: row 3: image: not a readable image \("):
        load_dataset(table)

    archive = tmp_path / "broken.npz"
    archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match=rf"^{archive}: not a readable .npz archive \("):
        load_dataset(archive)


def test_a_folder_an_older_version_wrote_whole_keeps_the_users_files(tmp_path: Path) -> None:
    """An older version's marker: files of the names the command writes are its own, any other file is kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".recommender-output.json").write_text('{"kind": "t"}\n')
    (out / "a.txt").write_text("old")
    (out / "notes.md").write_text("mine")
    write_output_folder(out, lambda part: (part / "a.txt").write_text("new"), kind="t")
    assert tree(out) == {"a.txt": b"new", "notes.md": b"mine",
                         MANIFEST: b'{\n "outputs": {\n  "t": [\n   "a.txt"\n  ]\n }\n}\n'}


def test_finetune_without_a_learning_rate_is_one_line_before_anything_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import recommender.zoo.datasets as datasets

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded")

    monkeypatch.setattr(datasets, "load_dataset", no_loading)
    db = tmp_path / "h.db"
    assert main(["finetune", "--data", "tweets", "--model", "glove-6B-50d", "--db", str(db), "--lrs", ""]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["recommender finetune: error: --lrs: give at least one learning rate"]
    assert not db.exists()
