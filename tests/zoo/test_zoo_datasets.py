"""Dataset loaders and stratified subsampling of recommender.zoo on the shipped data and small files."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from recommender.errors import UserError
from recommender.zoo.datasets import (
    from_table,
    load_arrays,
    load_dataset,
    load_image_folder,
    load_table,
    shipped_names,
    subsample,
)

# rows (after dropping repeated example-label rows: 98, 27 and 1) and classes of recommender/zoo/data/SOURCES.md
SHIPPED = {
    "bbc_news": (2127, 5, "text"),
    "fine_foods": (4973, 2, "text"),
    "austen": (1800, 6, "text"),
    "tweets": (1999, 2, "text"),
    "digits": (1797, 10, "image"),
    "mnist5k": (5000, 10, "image"),
}


def test_shipped_datasets_match_their_sources():
    assert set(SHIPPED) <= set(shipped_names())
    for name, (rows, classes, modality) in SHIPPED.items():
        ds = load_dataset(name)
        assert (len(ds), len(ds.classes), ds.modality) == (rows, classes, modality)
        assert ds.y.min() == 0 and ds.y.max() == classes - 1


@pytest.mark.slow
def test_a_wheel_install_finds_the_shipped_datasets_from_any_folder(tmp_path):
    # build the wheel from a copy of the sources (no build/ folder in the repository), install it into a bare
    # folder, and load from another working directory: only package data can be found there
    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    shutil.copytree(root / "recommender", src / "recommender", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(src)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("recommender-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True,
                   capture_output=True)
    (tmp_path / "elsewhere").mkdir()
    code = ("import recommender.zoo.datasets as d; print(d.__file__); print(','.join(d.shipped_names())); "
            "print(len(d.load_dataset('digits')))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path / "elsewhere", check=True,
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": ""}).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "site"))  # the installed copy, not the source tree
    assert out[1].split(",") == shipped_names() and out[2] == "1797"  # every shipped file made it into the wheel


def test_shipped_images_keep_their_pixels():
    digits = load_dataset("digits")
    from sklearn.datasets import load_digits

    # the Parquet stores round(v * 255 / 16); exact after rounding, so tolerance 0
    expected = np.round(load_digits().images * (255 / 16)).astype(np.uint8)
    assert digits.items.shape == (1797, 8, 8)
    np.testing.assert_array_equal(digits.items, expected)


def test_subsample_is_stratified_seeded_and_a_subset():
    ds = load_dataset("bbc_news")
    a, b, c = subsample(ds, 200, seed=1), subsample(ds, 200, seed=1), subsample(ds, 200, seed=2)
    assert len(a) == 200 and a.items == b.items and a.items != c.items
    full = np.bincount(ds.y) / len(ds)
    # stratification keeps each class share within one example of n * share
    assert np.all(np.abs(np.bincount(a.y, minlength=5) - 200 * full) <= 1.0)
    assert set(a.items) <= set(ds.items)
    assert subsample(ds, None) is ds


def test_subsample_refuses_a_class_too_small_to_stratify():
    ds = from_table(pd.DataFrame({"text": list("abcdef"), "label": ["x"] * 5 + ["y"]}), "t")
    with pytest.raises(UserError, match="dataset t: cannot draw a stratified subsample of 3 examples"):
        subsample(ds, 3)


def test_fingerprint_changes_with_content():
    ds = load_dataset("tweets")
    assert subsample(ds, 50, 0).fingerprint() == subsample(ds, 50, 0).fingerprint()
    assert subsample(ds, 50, 0).fingerprint() != subsample(ds, 50, 1).fingerprint()


def test_csv_table(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a b", "c", "d e f", "g"], "label": ["x", "y", "x", "y"]}).to_csv(path, index=False)
    ds = load_table(path)
    assert ds.modality == "text" and ds.classes == ("x", "y") and ds.y.tolist() == [0, 1, 0, 1]


def test_repeated_rows_are_dropped_with_a_warning():
    frame = pd.DataFrame({"text": ["a", "b", "a", "a", "c"], "label": ["x", "y", "x", "y", "x"]})
    with pytest.warns(UserWarning, match="dropped 1 repeated"):
        ds = from_table(frame, "t")
    # the exact repeat ("a", "x") goes; the same text with another label stays
    assert ds.items == ["a", "b", "a", "c"] and ds.y.tolist() == [0, 1, 1, 0]


def test_image_folder_and_arrays(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(4, 6, 6), dtype=np.uint8)
    for i, img in enumerate(imgs):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / f"c{i % 2}" / f"{i}.png")
    ds = load_image_folder(tmp_path)
    assert ds.items.shape == (4, 6, 6) and ds.classes == ("c0", "c1")
    np.testing.assert_array_equal(ds.items[ds.y == 0][0], imgs[0])  # PNG is lossless
    np.savez(tmp_path / "a.npz", X=imgs.reshape(4, 36) / 255.0, y=np.array([0, 1, 0, 1]))
    arr = load_arrays(tmp_path / "a.npz")
    np.testing.assert_array_equal(arr.items, imgs)  # x/255*255 rounds back exactly


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"text": ["a", "b"]}), "no label column"),
        (pd.DataFrame({"text": ["a", "b"], "label": ["x", None]}), "labels are missing"),
        (pd.DataFrame({"text": ["a", "b"], "label": ["x", "x"]}), "at least 2 classes"),
        (pd.DataFrame({"words": ["a", "b"], "label": ["x", "y"]}), "needs a 'text' or 'image' column"),
    ],
)
def test_bad_tables_give_clear_errors(tmp_path, frame, message):
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(UserError, match=message):
        load_table(path)


def test_mixed_image_sizes_and_bad_arrays(tmp_path):
    def png(shape):
        buf = io.BytesIO()
        Image.fromarray(np.zeros(shape, np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    pd.DataFrame({"image": [png((4, 4)), png((5, 5))], "label": ["a", "b"]}).to_parquet(tmp_path / "m.parquet")
    with pytest.raises(UserError, match="different shapes"):
        load_table(tmp_path / "m.parquet")
    np.savez(tmp_path / "nan.npz", X=np.full((2, 4), np.nan), y=np.array([0, 1]))
    with pytest.raises(UserError, match="NaN"):
        load_arrays(tmp_path / "nan.npz")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("no_such_dataset")
