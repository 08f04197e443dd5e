"""The shipped datasets added for the offline benchmark (issue 15): counts, label sets and label alignment checked
against facts known apart from build.py (source documentation, strfile indexes, scripts, character names), and
against the source packages themselves where they are installed."""

from __future__ import annotations

import gzip
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from recommender.zoo.datasets import load_dataset, shipped_names

DATA = Path(__file__).resolve().parents[2] / "recommender" / "zoo" / "data"

SUPERSENSES = ("noun.animal", "noun.artifact", "noun.body", "noun.cognition", "noun.communication", "noun.food",
               "noun.location", "noun.person", "noun.plant", "noun.substance")
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
NOVELS = ("Great Expectations", "Pride and Prejudice", "The War of the Worlds", "Twenty Thousand Leagues under the Sea")
# rows per label. fortunes: Debian fortunes 1:1.99.1's strfile indexes (sports.dat, medicine.dat) count 147 and 74
# cookies, under the cap of 150. bing_sentiment: tidytext's lexicon has 4,781 negative and 2,005 positive words,
# 3 of them in both lists (dropped).
COUNTS = {
    "wordnet_nouns": dict.fromkeys(SUPERSENSES, 300),
    "fortunes": {**dict.fromkeys(("computers", "food", "law", "love", "politics", "science", "startrek", "work"), 150),
                 "sports": 147, "medicine": 74},
    "fortune_languages": dict.fromkeys(("bg", "cs", "de", "en", "es", "it", "pl", "ru"), 250),
    "bing_sentiment": {"negative": 4778, "positive": 2002},
    "novels": dict.fromkeys(NOVELS, 300),
    "fashion": dict.fromkeys(FASHION, 500),
    "lfw_faces": {"face": 100, "non-face": 100},  # scikit-image's lfw_subset docstring: 100 faces, 100 non-faces
    "textures": dict.fromkeys(("brick", "grass", "gravel"), (512 // 32) ** 2),  # a 512x512 photo in 32x32 tiles
    "emoji": {"Activities": 74, "Animals & Nature": 142, "Food & Drink": 131, "Objects": 212, "People & Body": 144,
              "Smileys & Emotion": 152, "Symbols": 142, "Travel & Places": 169},
}
IMAGE_SIDE = {"fashion": 28, "lfw_faces": 25, "textures": 32, "emoji": 32}
IMAGE_MODE = {"fashion": "L", "lfw_faces": "L", "textures": "L", "emoji": "RGB"}
# where the Debian source packages are unpacked (/ when installed); the cross-checks skip without them
DEB_ROOT = Path(os.environ.get("RECOMMENDER_DEB_ROOT", "/"))


def table(name: str) -> pd.DataFrame:
    return pd.read_parquet(DATA / f"{name}.parquet")


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_new_dataset_has_its_documented_classes_and_counts_and_loads_without_repeats(name):
    assert name in shipped_names()
    df = table(name)
    assert not df.isna().any().any()
    assert df["label"].value_counts().to_dict() == COUNTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dropped repeat would warn: the build removed them
        ds = load_dataset(name)
    assert len(ds) == sum(COUNTS[name].values()) and set(ds.classes) == set(COUNTS[name])
    assert ds.modality == ("image" if name in IMAGE_SIDE else "text")
    if ds.modality == "text":
        assert all(t.strip() for t in ds.items)


@pytest.mark.parametrize("name", sorted(IMAGE_SIDE))
def test_new_image_datasets_are_pngs_of_the_stated_size_and_mode(name):
    side, mode = IMAGE_SIDE[name], IMAGE_MODE[name]
    for data in table(name)["image"]:
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.mode, img.size) == ("PNG", mode, (side, side))
    assert load_dataset(name).items.shape[1:] == ((side, side) if mode == "L" else (side, side, 3))


def test_twelve_or_more_shipped_datasets_each_under_3_mb():
    sizes = {p.name: p.stat().st_size for p in DATA.glob("*.parquet")}
    assert len(sizes) >= 12 and max(sizes.values()) < 3_000_000


def test_fortune_languages_labels_agree_with_the_script_of_the_text():
    # Bulgarian and Russian are written in Cyrillic, the other six in Latin script
    df = table("fortune_languages")
    cyrillic = df["text"].str.contains("[\u0400-\u04ff]")
    assert cyrillic.equals(df["label"].isin(["bg", "ru"]))
    assert df["text"].str.len().between(30, 600).all()


@pytest.mark.parametrize(("names", "novel"), [
    ("Bennet|Darcy", "Pride and Prejudice"),
    ("Nemo|Nautilus|Ned Land", "Twenty Thousand Leagues under the Sea"),
    ("Martian", "The War of the Worlds"),
    ("Havisham|Pip\\b", "Great Expectations"),
])
def test_novel_paragraphs_naming_a_character_carry_that_novel(names, novel):
    df = table("novels")
    hits = df[df["text"].str.contains(names)]
    assert len(hits) >= 20 and (hits["label"] == novel).all()


def test_wordnet_glosses_of_cities_and_genera_carry_the_matching_supersense():
    # "a city in ..." defines a place; "genus of ..." is a taxon of animals or plants (WordNet files taxa there)
    df = table("wordnet_nouns")
    assert set(df["label"]) == set(SUPERSENSES)
    cities = df[df["text"].str.startswith("a city in ")]
    genera = df[df["text"].str.contains(r"\bgenus of\b")]
    assert len(cities) >= 10 and (cities["label"] == "noun.location").all()
    assert len(genera) >= 10 and genera["label"].isin(["noun.animal", "noun.plant"]).all()


def test_bing_lexicon_words_keep_their_polarity():
    df = table("bing_sentiment")
    words = dict(zip(df["text"], df["label"], strict=True))
    assert {w: words[w] for w in ("good", "love", "excellent", "bad", "abnormal", "terrible")} == {
        "good": "positive", "love": "positive", "excellent": "positive",
        "bad": "negative", "abnormal": "negative", "terrible": "negative"}
    assert "envious" not in words  # listed as both positive and negative in the source: dropped


@pytest.mark.filterwarnings("ignore:self.within_class_std_dev_")  # constant border pixels: harmless here
def test_image_labels_are_aligned_with_their_pixels():
    # a nearest-centroid classifier on raw pixels is far above chance (0.1, 0.5, 0.18 for the largest emoji group)
    # only if labels follow the images; measured 0.70, 0.70 and 0.45 on this split, floors leave a margin
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import NearestCentroid

    for name, floor in (("fashion", 0.6), ("lfw_faces", 0.6), ("emoji", 0.3)):
        ds = load_dataset(name)
        X = ds.items.reshape(len(ds), -1) / 255.0
        a, b, ya, yb = train_test_split(X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
        assert NearestCentroid().fit(a, ya).score(b, yb) > floor, name
    faces = table("lfw_faces")["label"]
    assert (faces[:100] == "face").all()  # the source's order: the first 100 are faces


def test_smileys_are_the_yellowest_emoji_group():
    # the yellow face emoji: mean (R + G) / 2 - B over inked (non-white) pixels is highest for Smileys & Emotion
    ds = load_dataset("emoji")
    x = ds.items.astype(float)
    ink = x.min(axis=3) < 235
    yellow = (x[..., 0] + x[..., 1]) / 2 - x[..., 2]
    per_group = {c: (yellow * ink)[ds.y == k].sum() / ink[ds.y == k].sum() for k, c in enumerate(ds.classes)}
    assert max(per_group, key=per_group.get) == "Smileys & Emotion"


def test_fashion_matches_the_debian_idx_files_when_installed():
    root = DEB_ROOT / "usr/share/datasets/fashion-mnist"
    if not root.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    source = {img.tobytes(): FASHION[y] for img, y in zip(images, labels, strict=True)}
    ds = load_dataset("fashion")
    shipped = ds.items.reshape(len(ds), -1)
    assert all(source[img.tobytes()] == ds.classes[y] for img, y in zip(shipped, ds.y, strict=True))


def test_lfw_faces_and_textures_match_scikit_image_when_installed():
    data = pytest.importorskip("skimage.data")
    lfw = load_dataset("lfw_faces")
    # stored as round(255 v): within half a grey level of the source floats
    np.testing.assert_allclose(lfw.items / 255.0, data.lfw_subset(), atol=0.5 / 255)
    textures = table("textures")
    for name in ("brick", "grass", "gravel"):
        img = getattr(data, name)()
        tiles = [np.asarray(Image.open(io.BytesIO(b))) for b in textures.loc[textures["label"] == name, "image"]]
        expected = {img[r:r + 32, c:c + 32].tobytes() for r in range(0, 512, 32) for c in range(0, 512, 32)}
        assert {t.tobytes() for t in tiles} == expected


def test_every_shipped_dataset_is_described_in_sources_md():
    sources = (DATA / "SOURCES.md").read_text()
    assert all(re.search(rf"\| `{name}\.parquet` \|", sources) for name in shipped_names())
