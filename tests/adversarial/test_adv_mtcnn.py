"""Hostile or broken MTCNN weights files (read by `weights.load_checked_state`, as every zoo weights file is):
anything but a mapping of the net's own parameter names to tensors of their shapes is refused in one line (UserError)
naming the file, and a pickled object is never built, so its code never runs."""

from __future__ import annotations

import os
import re
from collections import OrderedDict

import pytest
import torch

from recommender.errors import UserError
from recommender.zoo.mtcnn import MtcnnProvider, PNet
from recommender.zoo.weights import load_checked_state


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
    with pytest.raises(UserError, match=r"mtcnn_pnet\.pt: holds a pickled object, not plain tensors") as e:
        provider.network()
    # only torch's "Unsupported global" words, not its advice to load the file unsafely
    assert re.search(r"refused \(Unsupported global \w+\.system\)$", str(e.value)), str(e.value)
    with pytest.raises(UserError, match="refused"):
        provider.features([[[0] * 12] * 12])
    assert not marker.exists()


def test_a_whole_module_pickle_is_refused(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(PNet(), path)  # the legacy way of saving a model: a pickle of its class
    with pytest.raises(UserError, match="holds a pickled object, not plain tensors") as e:
        load_checked_state(PNet(), path)
    message = str(e.value)
    assert message.endswith("(Unsupported global recommender.zoo.mtcnn.PNet)"), message
    assert "\n" not in message and "\x1b" not in message and "weights_only" not in message


@pytest.mark.parametrize("edit, reason", [
    (lambda s: s.pop("conv4_2.bias"), "parameters differ"),
    (lambda s: s.update({"conv4_3.weight": torch.zeros(10, 32, 1, 1)}), "parameters differ"),
    (lambda s: s.update({"conv4_1.weight": torch.zeros(2, 32, 3, 3)}), "parameters differ"),
    (lambda s: s.update({"conv4_1.bias": 0.5}), r"expected a mapping of parameter names \(strings\) to tensors"),
])
def test_wrong_names_shapes_or_values_are_refused(tmp_path, edit, reason):
    state = _pnet_state()
    edit(state)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    net = PNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(UserError, match=reason):
        load_checked_state(net, path)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing half-loaded


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04broken zip"])
def test_a_truncated_or_foreign_file_is_refused(tmp_path, content):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"w\.pt: not a plain tensor file") as e:
        load_checked_state(PNet(), path)
    assert "\n" not in str(e.value) and "weights_only" not in str(e.value)


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_weights_file_cut_short_is_refused_naming_it(tmp_path, cut):
    whole = tmp_path / "whole.pt"
    torch.save(_pnet_state(), whole)
    data = whole.read_bytes()
    path = tmp_path / "mtcnn_cut.pt"
    path.write_bytes(data[: int(len(data) * cut)])  # the central directory of the zip archive is lost
    with pytest.raises(UserError, match=r"mtcnn_cut\.pt: not a plain tensor file, refused \(cannot be read whole") as e:
        load_checked_state(PNet(), path)
    assert "\n" not in str(e.value)


def test_a_key_that_is_not_a_name_is_refused(tmp_path):
    state = _pnet_state()
    state[1] = torch.zeros(2)  # type: ignore[index]  # beside the string names: a plain sort would fail on it
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"w\.pt: expected a mapping of parameter names \(strings\) to tensors"):
        load_checked_state(PNet(), path)


def test_a_list_of_tensors_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(list(_pnet_state().values()), path)
    with pytest.raises(UserError, match="expected a mapping"):
        load_checked_state(PNet(), path)
