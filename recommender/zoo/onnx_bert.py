"""The zoo's BERT encoder exported to ONNX (paraphrase-MiniLM-L3-v2, which ships only as ONNX), rebuilt as a
`transformers` BertModel from the file's initializers so that it runs in torch and can be fine-tuned. The converter
is made for that export only, not for any BERT-like graph: a user's own .onnx file runs in onnxruntime
(`onnx_text.OnnxTextProvider`).

Every initializer is mapped to one BERT parameter by following the graph: a named tensor keeps its name (after the
export's prefix, e.g. `model.0.auto_model.`), and a renamed MatMul weight (`onnx::MatMul_470`) takes the name of
the bias added to that MatMul's output. A MatMul multiplies by the (in x out) matrix, the transpose of torch's
`Linear.weight`; a matrix read any other way than by a MatMul or a Gather (a table), e.g. by a Gemm, has a layout
the converter does not know and maps to no parameter. The config (layers, widths, heads, LayerNorm epsilon) is read
from the weights' shapes and the graph; a file whose initializers do not all map, or whose BERT parameters are not
all found, is refused."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.errors import UserError
from recommender.zoo.hf import TransformersProvider

if TYPE_CHECKING:
    import torch
    from torch import nn

# a BERT parameter name inside an exported tensor name, after whatever prefix the export put before it
_BERT_NAME = re.compile(r"(?:^|\.)((?:embeddings|encoder\.layer\.\d+)\.[\w.]+\.(?:weight|bias))$")


def _bert_name(name: str) -> str | None:
    match = _BERT_NAME.search(name)
    return match.group(1) if match else None


def _attribute(node, name: str, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


class _Graph:
    """The parts of an ONNX graph the mapping needs: initializers, constants and who consumes each tensor."""

    def __init__(self, onnx_file: str):
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(onnx_file).graph
            self.arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        except Exception as e:  # onnx raises DecodeError, ValueError, ... on a damaged file
            reason = " ".join(str(e).split())  # one line
            raise UserError(f"{onnx_file}: not a readable ONNX model ({type(e).__name__}: {reason})") from None
        self.file, self.nodes = onnx_file, list(graph.node)
        self.consumers: dict[str, list] = defaultdict(list)
        self.producer = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)
            for name in node.output:
                self.producer[name] = node
        self.constants = {n.output[0]: numpy_helper.to_array(_attribute(n, "value")) for n in self.nodes
                          if n.op_type == "Constant" and _attribute(n, "value") is not None}

    def value(self, name: str) -> np.ndarray | None:
        """A tensor fixed in the file (initializer or Constant node), or None."""
        return self.arrays.get(name, self.constants.get(name))

    def _added_bias(self, output: str) -> str | None:
        """The BERT name of the bias initializer an Add node adds to `output`, if exactly one does."""
        names = {_bert_name(i) for n in self.consumers[output] if n.op_type == "Add" for i in n.input
                 if i != output and i in self.arrays}
        names.discard(None)
        return names.pop() if len(names) == 1 else None

    def parameter(self, name: str) -> tuple[str | None, np.ndarray]:
        """(BERT parameter name or None, the value in torch's layout) of one initializer; None for a matrix read
        other than as a MatMul's right-hand side or a Gather's table, whose layout is not known."""
        array, own = self.arrays[name], _bert_name(name)
        uses = [(node.op_type, list(node.input).index(name)) for node in self.consumers[name]]
        if array.ndim == 2 and uses and all(use == ("MatMul", 1) for use in uses):
            bias = self._added_bias(self.consumers[name][0].output[0])
            weight = own or (bias[: -len("bias")] + "weight" if bias and bias.endswith(".bias") else None)
            return weight, array.T  # x @ W with W (in x out): torch's Linear keeps out x in
        if array.ndim == 2 and any(use != ("Gather", 0) for use in uses):
            return None, array
        return own, array

    def heads(self, hidden: int) -> int:
        """Attention heads, from the scale of the attention scores: q k^T divided by sqrt(head size)."""
        sizes = set()
        for node in self.nodes:
            producer = self.producer.get(node.input[0]) if node.input else None
            if node.op_type not in ("Div", "Mul") or producer is None or producer.op_type != "MatMul":
                continue
            if any(i in self.arrays for i in producer.input):  # a weight MatMul, not q k^T
                continue
            scale = self.value(node.input[1])
            if scale is not None and scale.size == 1 and float(scale) > 0:
                sizes.add(round(float(scale) ** 2 if node.op_type == "Div" else float(scale) ** -2))
        if len(sizes) != 1 or not next(iter(sizes)) or hidden % next(iter(sizes)):
            raise UserError(f"{self.file}: not a BERT graph (no single attention-score scale dividing hidden size "
                            f"{hidden}; found head sizes {sorted(sizes)})")
        return hidden // sizes.pop()

    def layer_norm_eps(self) -> float:
        """The epsilon of the graph's LayerNormalization nodes (one value for all)."""
        eps = {float(_attribute(n, "epsilon", 1e-5)) for n in self.nodes if n.op_type == "LayerNormalization"}
        if len(eps) != 1:
            raise UserError(f"{self.file}: not a BERT graph (LayerNormalization epsilons {sorted(eps)})")
        return eps.pop()


def bert_state(onnx_file: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The BERT parameters (torch layout) of an exported encoder and the BertConfig fields read from the graph;
    a UserError naming the file when an initializer has no BERT parameter or one is mapped twice."""
    import torch

    graph = _Graph(onnx_file)
    state: dict[str, torch.Tensor] = {}
    for name in graph.arrays:
        key, value = graph.parameter(name)
        if key is None:
            raise UserError(f"{onnx_file}: initializer {name!r} {graph.arrays[name].shape} maps to no BERT "
                            "parameter (not a BERT encoder export)")
        if key in state:
            raise UserError(f"{onnx_file}: initializers map to {key} twice (not a BERT encoder export)")
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32))  # a writable, contiguous copy
    needed = ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
              "embeddings.token_type_embeddings.weight", "encoder.layer.0.intermediate.dense.bias")
    absent = [k for k in needed if k not in state or state[k].dim() != (1 if k.endswith(".bias") else 2)]
    if absent:
        raise UserError(f"{onnx_file}: no initializer of the right rank for BERT parameter {absent[0]} "
                        "(not a BERT encoder export)")
    vocab, hidden = state[needed[0]].shape
    config: dict[str, int | float | str] = {
        "vocab_size": vocab, "hidden_size": hidden, "max_position_embeddings": state[needed[1]].shape[0],
        "type_vocab_size": state[needed[2]].shape[0], "intermediate_size": state[needed[3]].shape[0]}
    if not any(n.op_type in ("Erf", "Gelu") for n in graph.nodes):  # BERT's exact GELU exports through Erf
        raise UserError(f"{onnx_file}: not a BERT graph (no exact GELU: no Erf or Gelu node)")
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")}
    config.update(num_hidden_layers=max(layers) + 1, num_attention_heads=graph.heads(hidden),
                  layer_norm_eps=graph.layer_norm_eps(), hidden_act="gelu")
    return state, config


def bert_from_onnx(onnx_file: str) -> nn.Module:
    """A transformers BertModel (no pooler) carrying the ONNX file's weights, every parameter checked."""
    import torch
    from transformers import BertConfig, BertModel

    state, config = bert_state(onnx_file)
    # the dropout rates (hidden, attention: 0.1) are BertConfig's defaults, equal to the model's config on the hub
    model = BertModel(BertConfig(**config), add_pooling_layer=False)
    params = dict(model.named_parameters())
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise UserError(f"{onnx_file}: BERT parameters without an initializer {missing[:3]}, initializers "
                        f"without a BERT parameter {unexpected[:3]}")
    with torch.no_grad():
        for key, value in state.items():
            if params[key].shape != value.shape:
                raise UserError(f"{onnx_file}: initializer for {key} has shape {tuple(value.shape)}, "
                                f"want {tuple(params[key].shape)}")
            params[key].copy_(value)
    return model


@dataclass
class OnnxBertProvider(TransformersProvider):
    """The zoo's BERT text encoder shipped as ONNX, run and fine-tuned in torch: its weights read out of `onnx_file`
    (`bert_from_onnx`), its tokenizer from `path`."""

    onnx_file: str = ""

    @property
    def preprocessing(self) -> str:
        # the features come from torch, not onnxruntime: float32 sums in another order, so another cache key
        return f"{super().preprocessing};runtime:torch-from-onnx"

    def _build_encoder(self) -> nn.Module:
        from recommender.zoo.nets import MeanPooledTransformer

        return MeanPooledTransformer(bert_from_onnx(self.onnx_file))
