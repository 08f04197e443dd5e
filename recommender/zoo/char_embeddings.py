"""chars2vec (Intuition Engineering): two stacked LSTMs that embed a word from its spelling. The weights ship as an ONNX
export of the Keras model; they are read into a torch LSTM, so the model can be fine-tuned. A text's feature is the
mean of its words' vectors."""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.errors import UserError
from recommender.zoo.provider import Provider

if TYPE_CHECKING:
    import torch
    from torch import nn


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


def keras_lstm_weights(onnx_file: str, layers: int = 2) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(kernel, recurrent kernel, bias) of each Keras LSTM layer in a tf2onnx export, read from its initializers."""
    import onnx
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in onnx.load(onnx_file).graph.initializer}
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(1, layers + 1):
        prefix = f"embedding_model_1/lstm_{k}_1/lstm_cell_1"
        names = [f"{prefix}/{op}/ReadVariableOp/resource:0" for op in ("Cast", "Cast_1", "add_1")]
        missing = [n for n in names if n not in found]
        if missing:
            raise UserError(f"{onnx_file}: not the chars2vec export (missing {', '.join(missing)})")
        kernel, recurrent, bias = (found[n] for n in names)
        out.append((kernel, recurrent, bias))
    return out


@dataclass
class Chars2VecProvider(Provider):
    """Mean of chars2vec word vectors over a text's whitespace-separated, lower-cased words (first `max_chars` of the
    text, first `max_word_chars` of a word)."""

    onnx_file: str = ""
    char_table: str = ""
    max_chars: int = 2000
    max_word_chars: int = 40

    @property
    def preprocessing(self) -> str:
        return f"chars:{self.max_chars};tok:lower-whitespace;word:{self.max_word_chars};pool:mean;empty:zero"

    def chars(self) -> dict[str, int]:
        """Character -> one-hot index (the table beside the model), loaded once."""
        if getattr(self, "_chars", None) is None:
            self._dim, self._chars = read_char_table(self.char_table)
        return self._chars

    def _build_encoder(self) -> nn.Module:
        from recommender.zoo.nets import CharLSTM

        chars = self.chars()
        return CharLSTM(len(chars), self._dim).load_keras(keras_lstm_weights(self.onnx_file))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        import torch
        import torch.nn.functional as F

        table = self.chars()
        texts = [re.findall(r"\S+", str(t)[: self.max_chars].lower()) for t in items]
        index = {w: i for i, w in enumerate(dict.fromkeys(w[: self.max_word_chars] for ws in texts for w in ws))}
        lengths = torch.tensor([len(w) for w in index], dtype=torch.long)
        codes = torch.full((len(index), int(lengths.max()) if len(index) else 0), -1, dtype=torch.long)
        for i, w in enumerate(index):
            codes[i, : len(w)] = torch.tensor([table.get(ch, -1) for ch in w], dtype=torch.long)
        # one-hot rows; an unknown character (-1), like the padding, is an all-zero step
        onehot = F.one_hot(codes + 1, len(table) + 1)[..., 1:].float()
        ids = [index[w[: self.max_word_chars]] for ws in texts for w in ws]
        counts = torch.tensor([len(ws) for ws in texts], dtype=torch.long)
        return {"chars": onehot, "lengths": lengths, "ids": torch.tensor(ids, dtype=torch.long),
                "offsets": torch.cumsum(counts, 0) - counts}
