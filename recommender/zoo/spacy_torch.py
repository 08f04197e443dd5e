"""spaCy's `tok2vec` (MultiHashEmbed + MaxoutWindowEncoder, as in en_core_web_sm) re-implemented in torch, so the
pipeline's token vectors can be fine-tuned. The weights are copied from the loaded thinc model, whose layer
structure is read from the model itself. Tokenizing, attribute extraction and hashing stay in spaCy/thinc, on the
CPU (`recommender.zoo.spacy_rows`): they turn text into table rows, as a tokenizer turns text into ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recommender.errors import UserError
from recommender.zoo.provider import masked_mean
from recommender.zoo.spacy_rows import thinc_nodes

if TYPE_CHECKING:
    from thinc.api import Model

    ThincModel = Model[Any, Any]


class Maxout(nn.Module):
    """thinc's Maxout: a linear map to nO x nP pieces, then the largest piece of each output."""

    def __init__(self, n_in: int, n_out: int, pieces: int):
        super().__init__()
        self.n_out, self.pieces = n_out, pieces
        self.linear = nn.Linear(n_in, n_out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.n_out, self.pieces)).amax(-1)

    def load_thinc(self, node: ThincModel) -> None:
        """Copy W (nO, nP, nI) and b (nO, nP) of a thinc maxout node; the row order nO-major matches thinc's
        reshape of W to (nO * nP, nI)."""
        _copy(self.linear.weight, _param(node, "W").reshape(self.n_out * self.pieces, -1), node.name)
        _copy(self.linear.bias, _param(node, "b").reshape(-1), node.name)


def _param(node: ThincModel, name: str) -> np.ndarray:
    """A parameter of a thinc node as a numpy array (thinc's CPU arrays are numpy's)."""
    return np.asarray(node.get_param(name))


def _copy(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    if tuple(param.shape) != value.shape:
        raise UserError(f"spaCy tok2vec {where}: weights of shape {value.shape}, want {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))


def _load_norm(norm: nn.LayerNorm, node: ThincModel) -> None:
    """Copy G and b of a thinc LayerNorm, which is (x - mean) / sqrt(biased var + 1e-8) * G + b: torch's
    LayerNorm with eps 1e-8."""
    _copy(norm.weight, _param(node, "G"), node.name)
    _copy(norm.bias, _param(node, "b"), node.name)


class _Block(nn.Module):
    """One residual block of the encoder: x + dropout(layernorm(maxout(window(x)))), the window being the
    `window` neighbours on each side concatenated as thinc's seq2col does (left, self, right; zeros past the ends)."""

    def __init__(self, width: int, window: int, pieces: int, dropout: float):
        super().__init__()
        self.window = window
        self.maxout = Maxout(width * (2 * window + 1), width, pieces)
        self.norm = nn.LayerNorm(width, eps=1e-8)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, T = self.window, x.shape[1]
        padded = F.pad(x, (0, 0, w, w))
        cols = torch.cat([padded[:, i: i + T] for i in range(2 * w + 1)], dim=-1)
        return x + self.dropout(self.norm(self.maxout(cols)))


class Tok2Vec(nn.Module):
    """Token vectors from hashed table rows: per table the sum of its rows, concatenated, mixed by maxout +
    layernorm, then residual window blocks over each text with `pad` zero rows on either side (thinc's
    `with_array(pad=...)`, which keeps the texts of a batch apart; those rows change from layer to layer, as in
    thinc, so they are part of the sequence here too)."""

    def __init__(self, tables: list[tuple[int, int, float]], width: int, pieces: int, window: int, pad: int,
                 dropouts: list[float]):
        """`tables`: (rows, dim, column dropout) per hash table; `dropouts`: the mixing layer's, then each block's."""
        super().__init__()
        self.tables = nn.ParameterList([nn.Parameter(torch.zeros(rows, dim)) for rows, dim, _ in tables])
        self.embed_dropouts, self.pad = [rate for _, _, rate in tables], pad
        self.mix = Maxout(sum(dim for _, dim, _ in tables), width, pieces)
        self.mix_norm = nn.LayerNorm(width, eps=1e-8)
        self.mix_dropout = nn.Dropout(dropouts[0])
        self.blocks = nn.ModuleList(_Block(width, window, pieces, rate) for rate in dropouts[1:])

    def tokens(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token vectors (B x T x width) of rows (B x T x tables x hashes, each a row of its table); the padded
        positions (mask 0) hold no token and their vectors are meaningless."""
        parts = []
        for k, (table, rate) in enumerate(zip(self.tables, self.embed_dropouts, strict=True)):
            part = table[rows[:, :, k]].sum(2)
            if self.training and rate > 0:  # HashEmbed drops whole output columns, one mask for the batch
                keep = torch.rand(part.shape[-1], device=part.device) > rate
                part = part * keep.to(part.dtype) / (1 - rate)
            parts.append(part)
        x = self.mix_dropout(self.mix_norm(self.mix(torch.cat(parts, dim=-1))))
        x = F.pad(x * mask.unsqueeze(-1).to(x.dtype), (0, 0, self.pad, self.pad))
        for block in self.blocks:
            x = block(x)
        return x[:, self.pad: x.shape[1] - self.pad]

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean token vector of each text (B x width); a text without tokens gives zeros."""
        return masked_mean(self.tokens(rows, mask), mask)


def tok2vec_from_thinc(model: ThincModel) -> Tok2Vec:
    """A torch Tok2Vec with the weights of a loaded spaCy Tok2Vec.v2 thinc model (MultiHashEmbed.v2 without static
    vectors, MaxoutWindowEncoder.v2); sizes, seeds, window, padding and dropout rates are read from the model."""
    embeds, maxouts = thinc_nodes(model, "hashembed"), thinc_nodes(model, "maxout")
    norms = thinc_nodes(model, "layernorm")
    windows, dropouts = thinc_nodes(model, "expand_window"), thinc_nodes(model, "dropout")
    encoder = [n for n in model.walk() if n.name.startswith("with_array(residual(")]
    if not embeds or len(encoder) != 1 or len(maxouts) != len(windows) + 1 or len(norms) != len(maxouts) \
            or len({w.attrs["window_size"] for w in windows}) > 1 or len(dropouts) != len(maxouts):
        raise UserError(f"spaCy tok2vec {model.name}: not a MultiHashEmbed + MaxoutWindowEncoder model")
    window, pad, width = windows[0].attrs["window_size"], encoder[0].attrs["pad"], maxouts[0].get_dim("nO")
    if pad < window * len(windows):  # thinc would then mix neighbouring texts of a batch
        raise UserError(f"spaCy tok2vec {model.name}: padding {pad} is narrower than the encoder's reach")
    # model.walk() is breadth-first: the mixing layer's maxout, layernorm and dropout come before the blocks' ones
    tables = [(e.get_dim("nV"), e.get_dim("nO"), e.attrs.get("dropout_rate") or 0.0) for e in embeds]
    net = Tok2Vec(tables, width, maxouts[0].get_dim("nP"), window, pad,
                  [d.attrs.get("dropout_rate") or 0.0 for d in dropouts])
    for table, node in zip(net.tables, embeds, strict=True):
        _copy(table, _param(node, "E"), node.name)
    net.mix.load_thinc(maxouts[0])
    _load_norm(net.mix_norm, norms[0])
    for block, maxout, norm in zip(cast(list[_Block], list(net.blocks)), maxouts[1:], norms[1:], strict=True):
        block.maxout.load_thinc(maxout)
        _load_norm(block.norm, norm)
    return net


