"""Hostile or broken MTCNN weights files: anything but a mapping of the net's own parameter names to tensors of their
shapes is refused in one line (UserError), and a pickled object is never built, so its code never runs."""

from __future__ import annotations

import os
from collections import OrderedDict

import pytest
import torch

from recommender.errors import UserError
from recommender.zoo.mtcnn import MtcnnProvider, PNet, load_tensor_state


class _Touches:
    """A pickled object that would run a shell command (creating a marker file) when a plain unpickler builds it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pnet_state() -> OrderedDict:
    return OrderedDict((k, v.clone()) for k, v in PNet().state_dict().items())


def test_a_pickled_command_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "mtcnn_pnet.pt"
    state = _pnet_state()
    state["features.conv1.bias"] = _Touches(str(marker))  # hidden among real tensors
    torch.save(state, evil)
    provider = MtcnnProvider("mtcnn-pnet", "image", net="pnet", weights=str(evil))
    with pytest.raises(UserError, match=r"mtcnn_pnet\.pt: not a plain tensor file, refused") as e:
        provider.network()
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="refused"):
        provider.features([[[0] * 12] * 12])
    assert not marker.exists()


def test_a_whole_module_pickle_is_refused(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(PNet(), path)  # the legacy way of saving a model: a pickle of its class
    with pytest.raises(UserError, match="not a plain tensor file"):
        load_tensor_state(PNet(), path)


@pytest.mark.parametrize("edit, reason", [
    (lambda s: s.pop("conv4_2.bias"), "parameters differ"),
    (lambda s: s.update({"conv4_3.weight": torch.zeros(10, 32, 1, 1)}), "parameters differ"),
    (lambda s: s.update({"conv4_1.weight": torch.zeros(2, 32, 3, 3)}), "parameters differ"),
    (lambda s: s.update({"conv4_1.bias": 0.5}), "expected a mapping of parameter names to tensors"),
])
def test_wrong_names_shapes_or_values_are_refused(tmp_path, edit, reason):
    state = _pnet_state()
    edit(state)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    net = PNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(UserError, match=reason):
        load_tensor_state(net, path)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing half-loaded


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04broken zip"])
def test_a_truncated_or_foreign_file_is_refused(tmp_path, content):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"w\.pt: not a plain tensor file"):
        load_tensor_state(PNet(), path)


def test_a_list_of_tensors_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(list(_pnet_state().values()), path)
    with pytest.raises(UserError, match="expected a mapping"):
        load_tensor_state(PNet(), path)
