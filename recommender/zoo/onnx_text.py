"""A user's BERT-style text encoder exported to ONNX (an .onnx file with its tokenizer.json), run by onnxruntime on
the CPU; it cannot be fine-tuned. The zoo's own ONNX export is rebuilt in torch instead (`onnx_bert`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recommender.zoo.hf import TransformersProvider
from recommender.zoo.provider import Provider, masked_mean


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
