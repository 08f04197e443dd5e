"""The torch modules of the zoo's providers that wrap or hold their weights: a Hugging Face encoder pooled
(`MeanPooledTransformer`, `PooledImageModel`), a bag of static vectors (`BagOfVectors`), chars2vec's LSTM
(`CharLSTM`). A provider imports this module where it builds its encoder, so that the providers themselves load
without torch (`recommender.zoo.provider`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from recommender.errors import UserError
from recommender.zoo.provider import masked_mean


class MeanPooledTransformer(nn.Module):
    """A Hugging Face encoder followed by attention-masked mean pooling (the sentence-transformers recipe)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(out, attention_mask)


def pooled(out: object, use_pooler: bool) -> torch.Tensor:
    """B x D features of a transformers vision model's output: its `pooler_output` when `use_pooler` and the
    architecture gives one, else the mean of the last hidden state over tokens (B x T x D) or positions
    (B x C x H x W)."""
    features = getattr(out, "pooler_output", None) if use_pooler else None
    if features is None:
        hidden = out.last_hidden_state  # type: ignore[attr-defined]  # every transformers vision encoder has it
        features = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
    return features.reshape(features.shape[0], -1)  # ResNet's pooler keeps 1 x 1 spatial axes


class PooledImageModel(nn.Module):
    """A transformers vision encoder whose forward gives pooled features (`pooled`)."""

    def __init__(self, model: nn.Module, use_pooler: bool):
        super().__init__()
        self.model = model
        self.use_pooler = use_pooler

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled(self.model(pixel_values=pixel_values), self.use_pooler)


class BagOfVectors(nn.Module):
    """Mean of word vectors over a text's known tokens (an EmbeddingBag, so it can be fine-tuned)."""

    def __init__(self, vectors: np.ndarray):
        super().__init__()
        self.bag = nn.EmbeddingBag.from_pretrained(torch.from_numpy(np.asarray(vectors, dtype=np.float32)),
                                                   freeze=False, mode="mean")

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.bag(ids, offsets)


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
