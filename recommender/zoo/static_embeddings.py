"""Static token-embedding models (WordLlama, Model2Vec style): a subword tokenizer and one vector per token, a text's
feature being the mean of its tokens' vectors. An EmbeddingBag holds the table, so the model can be fine-tuned."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# the word-vector models' EmbeddingBag: mean mode, so an empty text gives the zero vector
from recommender.zoo.providers import Provider, _BagOfVectors


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

        return _BagOfVectors(load_file(self.weights_file)[self.tensor])

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        encodings = self.tokenizer().encode_batch([str(t) for t in items], add_special_tokens=False)
        lengths = torch.tensor([len(e.ids) for e in encodings], dtype=torch.long)
        ids = torch.tensor([i for e in encodings for i in e.ids], dtype=torch.long)
        offsets = torch.cumsum(lengths, 0) - lengths
        return {"ids": ids, "offsets": offsets}
