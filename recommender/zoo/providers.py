"""Model providers: one interface that turns a batch of examples into pooled feature vectors.

A torch provider exposes its encoder (`encoder()` and `prepare(items)`), which serves both feature extraction
and fine-tuning; providers backed by another runtime (ONNX) override `features` and cannot be fine-tuned.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from recommender.contracts import MODEL_FACTS
from recommender.errors import UserError


@dataclass(frozen=True)
class ModelFacts:
    """Pair-table model features: family, pre-training data, size, upstream accuracy (`contracts.MODEL_FACTS`,
    the fields in that order)."""

    family: str | None = None
    pretrain_dataset: str | None = None
    params_m: float | None = None
    gmacs: float | None = None
    input_size: float | None = None
    imagenet_top1: float | None = None

    def as_row(self) -> dict:
        """The facts as pair-table columns (None becomes NaN)."""
        return {name: (np.nan if getattr(self, name) is None else getattr(self, name)) for name in MODEL_FACTS}


@dataclass
class Provider(ABC):
    """A pre-trained model that maps examples of one modality to pooled features."""

    name: str
    modality: str
    facts: ModelFacts = field(default_factory=ModelFacts)

    @property
    def preprocessing(self) -> str:
        """A string naming everything that changes the features besides the weights (part of the cache key)."""
        return ""

    @property
    def trainable(self) -> bool:
        """Whether `encoder()` gives a torch module that can be fine-tuned."""
        return True

    def locate(self) -> None:
        """Make sure the model's files are here, fetching them where that is allowed; a model that cannot be had is
        one UserError. Packaged models are always here (the default)."""
        return None

    def encoder(self) -> nn.Module:
        """The torch module mapping `prepare(items)` to pooled features (B x D); loaded once."""
        encoder: nn.Module | None = getattr(self, "_encoder", None)
        if encoder is None:
            encoder = self._build_encoder()
            self._encoder: nn.Module | None = encoder
        return encoder

    def reset_encoder(self) -> None:
        """Drop the loaded encoder, so that the next `encoder()` loads the pre-trained weights again
        (fine-tuning changes the encoder's weights in place)."""
        self._encoder = None

    def _build_encoder(self) -> nn.Module:
        raise UserError(f"model {self.name} runs outside torch and cannot be fine-tuned; pick a torch model")

    def source_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The pre-trained classifier on the pooled features, as weight (K x D) and bias (K), whose softmax gives the
        source probabilities of LEEP and NCE; None for a model without one (the default)."""
        return None

    @abstractmethod
    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        """Turn raw examples into the encoder's keyword inputs."""

    def input_config(self) -> str | None:
        """The configuration of `prepare`, for a provider whose prepared inputs are worth caching (decoded and
        resized images: `recommender.zoo.inputs`): two providers with the same configuration prepare the same items
        into the same tensors. None (the default): never cached."""
        return None

    def features(self, items: list | np.ndarray, device: str = "cpu") -> np.ndarray:
        """Pooled features (B x D, float32, on the CPU) of a batch of raw examples, without gradients."""
        return self.embed(self.prepare(items), device)

    def embed(self, inputs: dict[str, torch.Tensor], device: str = "cpu") -> np.ndarray:
        """Pooled features (B x D, float32, on the CPU) of a batch of `prepare`d inputs, without gradients.

        The encoder and the batch run on the torch `device`; the encoder stays there until `reset_encoder`. On
        CUDA the forward runs under autocast (`autocast_dtype`); on the CPU in float32, as always."""
        enc = self.encoder().to(device).eval()
        dtype = autocast_dtype(device)
        autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), autocast:
            moved = {name: tensor.to(device, non_blocking=True) for name, tensor in inputs.items()}
            return enc(**moved).float().cpu().numpy()


def autocast_dtype(device: str) -> torch.dtype | None:
    """The autocast dtype of feature extraction on a torch `device`: bfloat16 on a CUDA card that supports it,
    else float16; None (no autocast, float32) on the CPU."""
    if device.partition(":")[0] != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors (B x T x D) over the positions where mask (B x T) is 1."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)


class _MeanPooledTransformer(nn.Module):
    """A Hugging Face encoder followed by attention-masked mean pooling (the sentence-transformers recipe)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(out, attention_mask)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar and its notices (a fallback image processor, a pooler left
    unused) during the block, then restore its previous settings."""
    from transformers.utils import logging as hf_logging

    enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


class _AutoClass(Protocol):
    """A transformers Auto class (AutoModel, AutoTokenizer): what `TransformersProvider` calls on it."""

    def from_pretrained(self, source: str, /, *, local_files_only: bool, output_loading_info: bool = ...) -> Any: ...


@dataclass
class TransformersProvider(Provider):
    """A sentence-transformers or Hugging Face text encoder (folder or hub id), mean-pooled. A hub id loads from
    the Hugging Face cache, downloaded first unless `offline` (`recommender.zoo.hub`)."""

    path: str = ""
    max_length: int = 128
    offline: bool = False

    @property
    def preprocessing(self) -> str:
        return f"tok:max{self.max_length};pool:mean"

    def model_dir(self) -> str:
        """The folder the tokenizer and weights are loaded from: `path`, or a hub id's snapshot in the cache."""
        if Path(self.path).is_dir():
            return self.path
        from recommender.zoo.hub import snapshot_folder

        return str(snapshot_folder(self.path, self.offline))

    def locate(self) -> None:
        self.model_dir()

    def _from_pretrained(self, auto_class: _AutoClass, output_loading_info: bool = False):
        """`auto_class.from_pretrained` on the model's folder (`model_dir`), read from disk only; a bad file in it
        (config.json, weights) is one UserError naming the file.

        An option of the call rather than HF_HUB_OFFLINE in the environment: huggingface_hub reads that variable
        once, at its first import, so setting it later either does nothing or holds for the rest of the process."""
        source = self.model_dir()
        folder = Path(source)
        check_model_config(folder)
        from safetensors import SafetensorError

        try:
            if output_loading_info:  # only models take it
                return auto_class.from_pretrained(source, local_files_only=True, output_loading_info=True)
            return auto_class.from_pretrained(source, local_files_only=True)
        except pickle.UnpicklingError as e:  # torch's weights_only refusal: the refusal stands, in one line
            raise UserError(f"{_weights_file(folder)}: {_load_refusal(e)}") from None
        except SafetensorError as e:
            raise UserError(f"{_weights_file(folder)}: not a readable safetensors file ({e})") from None
        except (OSError, ValueError, RuntimeError, EOFError, KeyError) as e:
            raise UserError(f"model folder {folder}: cannot be loaded ({' '.join(str(e).split())[:300]})") from None

    def tokenizer(self):
        """The model's tokenizer, loaded once."""
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            self._tokenizer = self._from_pretrained(AutoTokenizer)
        return self._tokenizer

    def _build_encoder(self) -> nn.Module:
        from transformers import AutoModel

        with quiet_loading():
            return _MeanPooledTransformer(self._from_pretrained(AutoModel))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        enc = self.tokenizer()(list(items), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def _weights_file(folder: Path) -> Path:
    """The weights file transformers reads in a model folder (the first of WEIGHT_FILES there)."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), folder / WEIGHT_FILES[0])


def check_model_config(folder: Path) -> None:
    """Refuse, in one line naming it, a model folder's config.json that is not JSON or not an object (a folder
    without one, such as an ONNX model's tokenizer folder, is left to transformers)."""
    path = folder / "config.json"
    if not path.exists():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{path}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: must be a JSON object, got {type(config).__name__}")


def unpack_split_zip(parts: list[str] | tuple[str, ...], dest: str | Path) -> Path:
    """Concatenate the parts of a split zip and unzip it into dest, once and atomically; returns dest."""
    dest = Path(dest)
    if dest.is_dir():  # only ever created by the final rename, so it is complete
        return dest
    missing = [p for p in parts if not Path(p).is_file()]
    if missing:
        raise UserError(f"split zip for {dest.name}: missing part(s) {', '.join(missing)}; "
                        "reinstall the model's packages")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        whole = tmp / "whole.zip"
        with open(whole, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        try:
            with zipfile.ZipFile(whole) as z:
                z.extractall(tmp / "unzipped")  # checks every member's CRC
        except zipfile.BadZipFile as e:
            raise UserError(f"split zip for {dest.name}: the parts do not form a valid zip ({e}); "
                            "reinstall the model's packages") from None
        top = list((tmp / "unzipped").iterdir())
        # a zip of one folder holds the model inside it
        folder = top[0] if len(top) == 1 and top[0].is_dir() else tmp / "unzipped"
        try:
            folder.rename(dest)
        except OSError:
            if not dest.is_dir():  # otherwise another process unpacked it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@dataclass
class SplitZipTransformersProvider(TransformersProvider):
    """A TransformersProvider whose model folder ships as a split zip (`parts`), unpacked into `path` at first use."""

    parts: tuple[str, ...] = ()

    def model_dir(self) -> str:
        return str(unpack_split_zip(self.parts, self.path))


@dataclass
class OnnxTextProvider(TransformersProvider):
    """A BERT-style text encoder exported to ONNX (run by onnxruntime), with a tokenizer from `path`."""

    onnx_file: str = ""

    @property
    def trainable(self) -> bool:
        return False

    def _build_encoder(self) -> nn.Module:
        return Provider._build_encoder(self)

    def session(self):
        """The onnxruntime session, loaded once."""
        if getattr(self, "_session", None) is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            self._session = ort.InferenceSession(self.onnx_file, opts, providers=["CPUExecutionProvider"])
            # the token embeddings are the rank-3 output (batch x tokens x dim)
            self._token_output = next(o.name for o in self._session.get_outputs() if len(o.shape) == 3)
        return self._session

    # no `device` parameter on purpose: `extract` reads its absence as "runs on the CPU" (and keys the cache so)
    def features(self, items: list | np.ndarray) -> np.ndarray:  # type: ignore[override]
        return self.embed(self.prepare(items))

    def embed(self, inputs: dict[str, torch.Tensor], device: str = "cpu") -> np.ndarray:
        """Pooled features of prepared inputs, by onnxruntime on the CPU whatever `device` says."""
        arrays = {k: v.numpy().astype(np.int64) for k, v in inputs.items()}
        tokens = self.session().run([self._token_output], arrays)[0]
        pooled = masked_mean(torch.from_numpy(tokens), torch.from_numpy(arrays["attention_mask"]))
        return pooled.float().numpy()


class _BagOfVectors(nn.Module):
    """Mean of word vectors over a text's known tokens (an EmbeddingBag, so it can be fine-tuned)."""

    def __init__(self, vectors: np.ndarray):
        super().__init__()
        self.bag = nn.EmbeddingBag.from_pretrained(torch.from_numpy(np.asarray(vectors, dtype=np.float32)),
                                                   freeze=False, mode="mean")

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.bag(ids, offsets)


@dataclass
class WordVectorProvider(Provider):
    """A word-vector table (vectors .npy + vocabulary), pooled by the mean over lower-cased word tokens."""

    vectors_file: str = ""
    vocab_file: str = ""

    @property
    def preprocessing(self) -> str:
        return "tok:lower-words;pool:mean;unknown:zero"

    def vocab(self) -> dict[str, int]:
        """Word -> row of the vector table (row 0 of the bag is reserved for texts without a known word)."""
        if getattr(self, "_vocab", None) is None:
            import pandas as pd

            words = pd.read_parquet(self.vocab_file).iloc[:, 0].astype(str)
            self._vocab = {w: i + 1 for i, w in enumerate(words)}
        return self._vocab

    def _build_encoder(self) -> nn.Module:
        table = np.load(self.vectors_file, mmap_mode="r", allow_pickle=False)
        return _BagOfVectors(np.vstack([np.zeros((1, table.shape[1]), np.float32), table]))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        vocab = self.vocab()
        ids: list[int] = []
        offsets: list[int] = []
        for text in items:
            offsets.append(len(ids))
            row = [vocab[w] for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", text.lower()) if w in vocab]
            ids.extend(row or [0])  # an all-unknown text pools to the zero vector
        return {"ids": torch.tensor(ids, dtype=torch.long), "offsets": torch.tensor(offsets, dtype=torch.long)}


M = TypeVar("M", bound=nn.Module)
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")


def _load_refusal(e: Exception) -> str:
    """Why torch.load refused a weights file, in one line, without torch's advice or terminal colour codes."""
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, OSError):  # a zip archive cut short reads as "[Errno 22] Invalid argument"
        return f"not a plain tensor file, refused (cannot be read whole: {e.strerror or e}; truncated or damaged?)"
    text = _TERMINAL_CODES.sub("", str(e))
    named = re.search(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", text, re.IGNORECASE)
    if named:
        return f"holds a pickled object, not plain tensors, refused (Unsupported global {named.group(1)})"
    # torch's own words on what it met come after "WeightsUnpickler error:", when it says so
    lines = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
    return f"not a plain tensor file, refused ({(lines[0] if lines else type(e).__name__)[:200]})"


def load_checked_state(module: M, path: str | Path) -> M:
    """Load a weights file into module, refusing (UserError, one line naming the file; module unchanged) a file that
    holds anything but a mapping of the module's own parameter and buffer names to tensors of their shapes.

    `weights_only=True` never imports or calls what a pickle names: it refuses any object but tensors and plain
    containers before building it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise UserError(f"weights {path}: {_load_refusal(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"weights {path}: expected a mapping of parameter names (strings) to tensors")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    wanted = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if shapes != wanted:
        missing, unexpected = sorted(wanted.keys() - shapes.keys()), sorted(shapes.keys() - wanted.keys())
        reshaped = [(k, shapes[k], wanted[k]) for k in sorted(wanted.keys() & shapes.keys()) if shapes[k] != wanted[k]]
        raise UserError(f"weights {path}: parameters differ from {type(module).__name__}'s: missing keys "
                        f"{missing[:3]}, unexpected keys {unexpected[:3]}, (name, shape, wanted) {reshaped[:3]}")
    module.load_state_dict(state, strict=True)
    return module
