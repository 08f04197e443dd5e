"""chars2vec (Intuition Engineering): two stacked LSTMs that embed a word from its spelling. The weights ship as an ONNX
export of the Keras model; they are read into a torch LSTM, so the model can be fine-tuned. A text's feature is the
mean of its words' vectors."""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from recommender.errors import UserError
from recommender.zoo.provider import Provider


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


class CharLSTM(nn.Module):
    """Words (one-hot characters, padded) -> the last LSTM layer's final hidden state -> mean over each text's words.

    Packed sequences stop each word at its own length: the Keras model has no mask, so padding would change a word's
    vector."""

    def __init__(self, n_chars: int, dim: int, layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(n_chars, dim, num_layers=layers, batch_first=True)

    def load_keras(self, weights: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> CharLSTM:
        """Copy Keras LSTM weights in. Both order the gates input, forget, cell, output; Keras keeps one bias."""
        with torch.no_grad():
            for k, (kernel, recurrent, bias) in enumerate(weights):
                for name, value in (("weight_ih", kernel.T), ("weight_hh", recurrent.T), ("bias_ih", bias),
                                    ("bias_hh", np.zeros_like(bias))):
                    param = getattr(self.lstm, f"{name}_l{k}")
                    if tuple(param.shape) != value.shape:
                        raise UserError(f"chars2vec layer {k} {name}: shape {value.shape}, want {tuple(param.shape)}")
                    param.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))  # a writable copy
        return self

    def words(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Word vectors (U x D) of U one-hot words (U x L x C) of the given lengths."""
        packed = pack_padded_sequence(chars, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return self.lstm(packed)[1][0][-1]

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor, ids: torch.Tensor,
                offsets: torch.Tensor) -> torch.Tensor:
        if chars.shape[0] == 0:  # no text of the batch has a word
            return chars.new_zeros((offsets.shape[0], self.lstm.hidden_size))
        # a text's feature: the mean of its words' vectors (an empty bag gives the zero vector)
        return F.embedding_bag(ids, self.words(chars, lengths), offsets, mode="mean")


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
        chars = self.chars()
        return CharLSTM(len(chars), self._dim).load_keras(keras_lstm_weights(self.onnx_file))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
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
