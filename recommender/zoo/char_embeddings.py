"""chars2vec (Intuition Engineering): a character-level LSTM that embeds a word from its spelling, here as an ONNX
export. A text's feature is the mean of its words' vectors; the LSTM runs in onnxruntime, so it is not fine-tuned."""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass

import numpy as np
import torch

from recommender.errors import UserError
from recommender.zoo.providers import Provider


class _LiteralsOnly(pickle.Unpickler):
    """Reads a pickle of plain literals (lists, dicts, str, int) and refuses any class or function in it."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain literals are read")


def read_char_table(path: str) -> tuple[int, dict[str, int]]:
    """The (embedding dimension, character -> one-hot index) pair that chars2vec stores beside its model."""
    with open(path, "rb") as f:
        try:
            dim, chars = _LiteralsOnly(f).load()[:2]
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
            raise UserError(f"{path}: not a chars2vec character table ({e})") from None
    if not isinstance(dim, int) or not isinstance(chars, dict) or sorted(chars.values()) != list(range(len(chars))):
        raise UserError(f"{path}: not a chars2vec character table (want [dim, {{char: index}}])")
    return dim, chars


@dataclass
class Chars2VecProvider(Provider):
    """Mean of chars2vec word vectors over a text's whitespace-separated, lower-cased words (first `max_chars`)."""

    onnx_file: str = ""
    char_table: str = ""
    max_chars: int = 2000

    @property
    def trainable(self) -> bool:
        return False

    @property
    def preprocessing(self) -> str:
        return f"chars:{self.max_chars};tok:lower-whitespace;pool:mean;empty:zero"

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        raise UserError(f"model {self.name} runs in onnxruntime: it has no torch inputs")

    def session(self):
        """The onnxruntime session and the character table, loaded once."""
        if getattr(self, "_session", None) is None:
            import onnxruntime as ort

            self._dim, self._chars = read_char_table(self.char_table)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            self._session = ort.InferenceSession(self.onnx_file, opts, providers=["CPUExecutionProvider"])
        return self._session

    def word_vectors(self, words: list[str]) -> dict[str, np.ndarray]:
        """Each distinct word's vector. Words of one length run as one batch: the LSTM has no mask, so a word is
        never padded (padding would change its vector)."""
        session = self.session()
        name = session.get_inputs()[0].name
        by_length: dict[int, list[str]] = {}
        for w in dict.fromkeys(words):
            by_length.setdefault(len(w), []).append(w)
        vectors: dict[str, np.ndarray] = {}
        for length, group in by_length.items():
            onehot = np.zeros((len(group), length, len(self._chars)), np.float32)
            for i, w in enumerate(group):
                for j, ch in enumerate(w):
                    if ch in self._chars:  # an unknown character is an all-zero step
                        onehot[i, j, self._chars[ch]] = 1.0
            vectors |= dict(zip(group, session.run(None, {name: onehot})[0], strict=True))
        return vectors

    def features(self, items: list | np.ndarray, device: str = "cpu") -> np.ndarray:
        """Pooled features; `device` is accepted for the common interface, the ONNX LSTM always runs on the CPU."""
        texts = [re.findall(r"\S+", str(t)[: self.max_chars].lower()) for t in items]
        vectors = self.word_vectors([w for words in texts for w in words])
        dim = self._dim
        return np.stack([np.mean([vectors[w] for w in words], axis=0) if words else np.zeros(dim)
                         for words in texts]).astype(np.float32)
