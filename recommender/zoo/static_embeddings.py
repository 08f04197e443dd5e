"""Static embedding models: one vector per word (GloVe-style word vectors) or per subword token (WordLlama, Model2Vec
style), a text's feature being the mean of its tokens' vectors. An EmbeddingBag holds the table, so the model can be
fine-tuned."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.zoo.provider import Provider

if TYPE_CHECKING:
    import torch
    from torch import nn


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
        from recommender.zoo.nets import BagOfVectors

        table = np.load(self.vectors_file, mmap_mode="r", allow_pickle=False)
        return BagOfVectors(np.vstack([np.zeros((1, table.shape[1]), np.float32), table]))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        import torch

        vocab = self.vocab()
        ids: list[int] = []
        offsets: list[int] = []
        for text in items:
            offsets.append(len(ids))
            row = [vocab[w] for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", text.lower()) if w in vocab]
            ids.extend(row or [0])  # an all-unknown text pools to the zero vector
        return {"ids": torch.tensor(ids, dtype=torch.long), "offsets": torch.tensor(offsets, dtype=torch.long)}


@dataclass
class StaticTokenEmbeddingProvider(Provider):
    """Token vectors from a safetensors table (`tensor` key), tokens from a Hugging Face `tokenizer.json`; no special
    tokens, no truncation (the cost is linear in the text's length)."""

    weights_file: str = ""
    tokenizer_file: str = ""
    tensor: str = "embedding.weight"

    @property
    def preprocessing(self) -> str:
        return "tok:subword-no-special;pool:mean;empty:zero"

    def tokenizer(self):
        """The `tokenizers` tokenizer, loaded once."""
        if getattr(self, "_tokenizer", None) is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(self.tokenizer_file)
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        return self._tokenizer

    def _build_encoder(self) -> nn.Module:
        from safetensors.numpy import load_file

        from recommender.zoo.nets import BagOfVectors

        # the word vectors' EmbeddingBag: mean mode, so an empty text gives the zero vector
        return BagOfVectors(load_file(self.weights_file)[self.tensor])

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        import torch

        encodings = self.tokenizer().encode_batch([str(t) for t in items], add_special_tokens=False)
        lengths = torch.tensor([len(e.ids) for e in encodings], dtype=torch.long)
        ids = torch.tensor([i for e in encodings for i in e.ids], dtype=torch.long)
        offsets = torch.cumsum(lengths, 0) - lengths
        return {"ids": ids, "offsets": offsets}
