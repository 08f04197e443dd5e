"""Bad data files handed to `rank` / `finetune`: one line naming the file and the reason, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.errors import UserError
from recommender.zoo.datasets import load_arrays, load_table


def test_string_pixels_in_an_npz_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    np.savez(path, X=np.array([["a", "b"], ["c", "d"]]), y=np.array([0, 1]))
    with pytest.raises(UserError, match=r"^array file .*s\.npz: X must hold numbers \(pixel values\), not <U1$"):
        load_arrays(path)


def test_an_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, X=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    with pytest.raises(UserError, match=r"o\.npz: array X: holds Python objects \(dtype object\), which are never "):
        load_arrays(path)


@pytest.mark.parametrize("suffix, payload", [(".csv", b"\xff\xfe\x00garbage\x81"), (".parquet", b"not parquet")])
def test_a_corrupt_table_is_one_line(tmp_path: Path, suffix: str, payload: bytes) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(payload)
    with pytest.raises(UserError, match=rf"^data file .*bad\{suffix}: cannot read it as {suffix[1:]}: "):
        load_table(path)


def test_rank_on_a_corrupt_table_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from recommender.cli import main

    path = tmp_path / "bad.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x81")
    assert main(["rank", "--data", str(path), "--models", "glove-6B-50d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recommender rank: error: data file ") and "Traceback" not in err[0]
