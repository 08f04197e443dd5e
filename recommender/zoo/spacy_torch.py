"""spaCy's `tok2vec` (MultiHashEmbed + MaxoutWindowEncoder, as in en_core_web_sm) re-implemented in torch, so the
pipeline's token vectors can be fine-tuned. The weights are copied from the loaded thinc model, whose layer
structure is read from the model itself. Tokenizing, attribute extraction and hashing stay in spaCy/thinc, on the
CPU (`SpacyProvider.prepare`): they turn text into table rows, as a tokenizer turns text into ids."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recommender.errors import UserError
from recommender.zoo.provider import Provider, masked_mean

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.pipeline import TrainablePipe
    from spacy.tokens import Doc
    from thinc.api import Model
    from thinc.types import Ints1d

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


def _nodes(model: ThincModel, name: str) -> list[ThincModel]:
    return [node for node in model.walk() if node.name == name]


def tok2vec_from_thinc(model: ThincModel) -> Tok2Vec:
    """A torch Tok2Vec with the weights of a loaded spaCy Tok2Vec.v2 thinc model (MultiHashEmbed.v2 without static
    vectors, MaxoutWindowEncoder.v2); sizes, seeds, window, padding and dropout rates are read from the model."""
    embeds, maxouts, norms = _nodes(model, "hashembed"), _nodes(model, "maxout"), _nodes(model, "layernorm")
    windows, dropouts = _nodes(model, "expand_window"), _nodes(model, "dropout")
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


def hashed_rows(model: ThincModel, docs: list[Doc]) -> list[np.ndarray]:
    """Per doc, the table rows of its tokens (tokens x tables x 4, int64): spaCy's own feature extractor, then
    each HashEmbed's MurmurHash of its attribute column with its seed, modulo its number of rows."""
    extract = _nodes(model, "extract_features")[0]
    embeds = _nodes(model, "hashembed")
    out = []
    for doc, attrs in zip(docs, extract.predict(docs), strict=True):
        if not len(doc):
            out.append(np.zeros((0, len(embeds), 4), np.int64))
            continue
        attrs = np.asarray(attrs, dtype=np.uint64).reshape(len(doc), -1)
        # thinc types its arrays by protocols of its own; at run time they are these numpy arrays
        keys = [model.ops.hash(cast("Ints1d", np.ascontiguousarray(attrs[:, e.attrs["column"]])), e.attrs["seed"])
                % e.get_dim("nV") for e in embeds]
        out.append(np.stack(keys, axis=1).astype(np.int64))
    return out


@dataclass
class SpacyProvider(Provider):
    """A spaCy pipeline's tok2vec token vectors (its `doc.tensor`), computed in torch and mean-pooled over the tokens
    of the first `max_chars` characters (and first `max_length` tokens, when set)."""

    package: str = ""
    max_chars: int = 2000
    max_length: int | None = None

    @property
    def preprocessing(self) -> str:
        cut = f";tok:max{self.max_length}" if self.max_length else ""
        return f"chars:{self.max_chars}{cut};tok2vec:torch;pool:mean;empty:zero"

    def nlp(self) -> Language:
        """The loaded pipeline (only tok2vec is run), loaded once: `package` imported as a module and its `load()`
        called, or else (no module of that name) given to `spacy.load`, as a name or folder."""
        if getattr(self, "_nlp", None) is None:
            import spacy

            try:
                self._nlp = importlib.import_module(self.package).load()
            except ModuleNotFoundError as exc:
                if exc.name != self.package:  # the package is there but something it imports is not: say so
                    raise
                self._nlp = spacy.load(self.package)
            self._nlp.select_pipes(enable=["tok2vec"])
        return self._nlp

    def thinc_model(self) -> ThincModel:
        """The pipeline's tok2vec thinc model (the source of the weights and of the hashing)."""
        return cast("TrainablePipe", self.nlp().get_pipe("tok2vec")).model

    def _build_encoder(self) -> nn.Module:
        return tok2vec_from_thinc(self.thinc_model())

    def docs(self, items: list | np.ndarray) -> list[Doc]:
        """spaCy's tokenization of each text's first `max_chars` characters, cut to `max_length` tokens."""
        docs = [self.nlp().make_doc(str(t)[: self.max_chars]) for t in items]
        if self.max_length:
            docs = [d[: self.max_length].as_doc() if len(d) > self.max_length else d for d in docs]
        return docs

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        rows = hashed_rows(self.thinc_model(), self.docs(items))
        n_tables = len(_nodes(self.thinc_model(), "hashembed"))
        T = max((len(r) for r in rows), default=0)
        batch = torch.zeros((len(rows), T, n_tables, 4), dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = torch.from_numpy(r)
            mask[i, : len(r)] = 1
        return {"rows": batch, "mask": mask}
