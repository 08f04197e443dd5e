"""Hostile or broken files where the new zoo models read package data: the chars2vec character table is a pickle,
read with an unpickler that refuses every class and function."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import pytest

from recommender.errors import UserError
from recommender.zoo.char_embeddings import keras_lstm_weights, read_char_table


class _Runs:
    """A pickle that would call os.system when loaded by a plain unpickler."""

    def __reduce__(self):
        return os.system, ("echo pwned",)


@pytest.mark.parametrize("payload", [[300, _Runs()], [300, OrderedDict(a=0)]])
def test_char_table_refuses_any_class_or_function(tmp_path, payload):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match=r"model\.pkl: not a chars2vec character table \(refusing "):
        read_char_table(str(path))


@pytest.mark.parametrize("payload", [[300, {"a": 0, "b": 2}], ["300", {"a": 0}], {"a": 0}, [300]])
def test_char_table_refuses_a_malformed_table(tmp_path, payload):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match="not a chars2vec character table"):
        read_char_table(str(path))


def test_char_table_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([300, {"a": 0}])[:5])
    with pytest.raises(UserError, match="not a chars2vec character table"):
        read_char_table(str(path))


def test_an_onnx_file_without_the_lstm_weights_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    with pytest.raises(UserError, match="not the chars2vec export"):
        keras_lstm_weights(str(tmp_path / "m.onnx"))
