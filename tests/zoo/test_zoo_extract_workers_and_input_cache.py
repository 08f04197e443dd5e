"""Extraction that scales: batches prepared by DataLoader workers (the features do not depend on how many), the
input cache (images resized and normalised once per preprocessing, shared by the models with that preprocessing),
the feature-cache keys unchanged, autocast on CUDA (run where a GPU is present), and `rank --loader-workers`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from zoo_test_helpers import processed, tiny_bert, tiny_vit

from recommender.cli import main
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset, load_dataset, subsample
from recommender.zoo.extract import cache_key, extract
from recommender.zoo.zoos import get_provider

TEXTS = ["the cat is good", "i love this dog", "a bad day", "the dog is sad", "this is not happy", "i love it"] * 3


@pytest.fixture(scope="module")
def digits():
    return subsample(load_dataset("digits"), 40, seed=0)


def counted(provider, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches the provider prepares (tokenises, or resizes and normalises): one entry per call."""
    calls: list[int] = []
    prepare = provider.prepare

    def counting(items):
        calls.append(len(items))
        return prepare(items)

    monkeypatch.setattr(provider, "prepare", counting)
    return calls


def test_loader_workers_do_not_change_the_features(tmp_path, digits):
    """0 and 2 DataLoader workers: the same bytes, for an image and a text model; and the image features are the
    network's own on the processor's pixels (computed here without the provider)."""
    from transformers import AutoModel

    vit, bert = tiny_vit(tmp_path / "vit"), tiny_bert(tmp_path / "bert")
    texts = Dataset("texts", "text", TEXTS, np.arange(len(TEXTS)) % 2, ("a", "b"))
    for folder, ds in ((vit, digits), (bert, texts)):
        serial = extract(get_provider(str(folder)), ds, batch_size=7, progress=False, workers=0).features
        parallel = extract(get_provider(str(folder)), ds, batch_size=7, progress=False, workers=2).features
        assert serial.dtype == parallel.dtype == np.float32 and serial.shape[0] == len(ds)
        np.testing.assert_array_equal(serial, parallel)
    with torch.inference_mode():
        want = AutoModel.from_pretrained(vit)(pixel_values=processed(vit, digits.items)).pooler_output
    np.testing.assert_allclose(extract(get_provider(str(vit)), digits, progress=False).features, want.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_second_model_with_the_same_preprocessing_prepares_nothing(tmp_path, digits, monkeypatch):
    """Two ViTs with one image processor: the first prepares every batch once and stores the pixels; the second
    prepares none, and its features equal its features without any cache. A third model whose processor normalises
    with another mean prepares its own."""
    from transformers import ViTImageProcessor

    cache = FeatureCache(tmp_path / "cache")
    first, second = get_provider(str(tiny_vit(tmp_path / "a", seed=0))), get_provider(str(tiny_vit(tmp_path / "b",
                                                                                                      seed=1)))
    want_first = extract(get_provider(str(tmp_path / "a")), digits, progress=False).features
    want_second = extract(get_provider(str(tmp_path / "b")), digits, progress=False).features
    first_calls, second_calls = counted(first, monkeypatch), counted(second, monkeypatch)
    got_first = extract(first, digits, cache=cache, batch_size=16, progress=False).features
    assert first_calls == [16, 16, 8]
    stored = sorted((tmp_path / "cache" / "inputs").glob("*.npy"))
    assert len(stored) == 1 and np.load(stored[0]).shape == (40, 3, 32, 32)
    np.testing.assert_array_equal(np.load(stored[0]), processed(tmp_path / "a", digits.items).numpy())
    got_second = extract(second, digits, cache=cache, batch_size=16, progress=False, workers=2).features
    assert second_calls == []
    np.testing.assert_array_equal(got_first, want_first)
    np.testing.assert_array_equal(got_second, want_second)

    other = tiny_vit(tmp_path / "c", seed=2)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4, 0.4, 0.4]).save_pretrained(other)
    third = get_provider(str(other))
    third_calls = counted(third, monkeypatch)
    extract(third, digits, cache=cache, batch_size=16, progress=False)
    assert third_calls == [16, 16, 8] and len(list((tmp_path / "cache" / "inputs").glob("*.npy"))) == 2


def test_a_damaged_input_cache_entry_is_rebuilt(tmp_path, digits, monkeypatch):
    """A cut-short pixel file: one warning naming it, the batches prepared again, the right features, a good entry."""
    cache = FeatureCache(tmp_path / "cache")
    folder = tiny_vit(tmp_path / "a")
    extract(get_provider(str(folder)), digits, cache=cache, progress=False)
    (stored,) = (tmp_path / "cache" / "inputs").glob("*.npy")
    stored.write_bytes(stored.read_bytes()[:1000])
    again = get_provider(str(tiny_vit(tmp_path / "b", seed=1)))
    calls = counted(again, monkeypatch)
    with pytest.warns(UserWarning, match=f"input cache: {stored} is damaged"):
        got = extract(again, digits, cache=cache, progress=False).features
    assert len(calls) == 2
    np.testing.assert_array_equal(got, extract(get_provider(str(tmp_path / "b")), digits, progress=False).features)
    assert np.load(stored).shape == (40, 3, 32, 32)


def test_feature_cache_keys_stay_as_they_were(tmp_path, digits):
    """A user's cached features stay valid: the CPU key is the hash of (name, folder, preprocessing, dataset) as
    before, and the input cache lives in its own folder."""
    folder = tiny_vit(tmp_path / "vit")
    p = get_provider(str(folder))
    want = FeatureCache.key("vit", str(folder), "hf-image-processor;pool:pooler-if-trained-else-mean;grey->rgb",
                            digits.fingerprint())
    assert cache_key(p, digits) == cache_key(p, digits, "cpu") == want
    cache = FeatureCache(tmp_path / "cache")
    assert extract(p, digits, cache=cache, progress=False).key == want
    assert cache.path(want).is_file() and json.loads(cache.meta_path(want).read_text())["n"] == 40


def test_rank_loader_workers_gives_the_same_scores(tmp_path, capsys, digits):
    """`rank --loader-workers 2` scores as `--loader-workers 0` (no cache, so both extract); a negative count is
    refused."""
    folder = tiny_vit(tmp_path / "vit")
    rows = []
    for workers in ("0", "2"):
        code = main(["rank", "--data", "digits", "--n", "40", "--models", str(folder), "--scores", "logme,knn",
                     "--json", "--no-cache", "--quiet", "--device", "cpu", "--loader-workers", workers])
        assert code == 0
        rows.append(json.loads(capsys.readouterr().out)[0])
    assert rows[0]["score_logme"] == rows[1]["score_logme"] and rows[0]["score_knn"] == rows[1]["score_knn"]
    with pytest.raises(SystemExit):
        main(["rank", "--data", "digits", "--models", str(folder), "--loader-workers", "-1"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
def test_cuda_extraction_runs_under_autocast_and_stores_float32(tmp_path, digits):
    """On CUDA: float32 features near the CPU's (bf16/fp16 rounding), cached under the device's key, apart from
    the CPU's, with the autocast dtype in the entry's sidecar."""
    from recommender.zoo.provider import autocast_dtype

    dtype = autocast_dtype("cuda")
    assert dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    assert autocast_dtype("cpu") is None
    p = get_provider(str(tiny_vit(tmp_path / "vit")))
    cache = FeatureCache(tmp_path / "cache")
    gpu = extract(p, digits, cache=cache, progress=False, device="cuda")
    cpu = extract(p, digits, cache=cache, progress=False)
    assert gpu.features.dtype == np.float32 and gpu.key != cpu.key
    assert json.loads(cache.meta_path(gpu.key).read_text())["autocast"] == str(dtype)
    np.testing.assert_allclose(gpu.features, cpu.features, rtol=5e-2, atol=5e-2)


@pytest.mark.slow
def test_finetune_and_campaign_take_a_model_folder(tmp_path, capsys):
    """`campaign` and `finetune` resolve models as `rank` does: a tiny ViT folder is fine-tuned and scored under
    its folder's name, and the campaign's extraction fills the input cache (one 60-image entry)."""
    from recommender.history import open_store

    folder = tiny_vit(tmp_path / "vit")
    url, cache = f"sqlite:///{tmp_path / 'history.db'}", tmp_path / "cache"
    assert main(["campaign", "--models", str(folder), "--datasets", "digits", "--n", "60", "--lrs", "1e-2",
                 "--epochs", "1", "--executor", "serial", "--db", url, "--cache", str(cache), "--quiet"]) == 0
    store = open_store(url)
    assert set(store.jobs()["model"]) == {"vit"} and set(store.scores()["model"]) == {"vit"}
    (entry,) = (cache / "inputs").glob("*.npy")
    assert np.load(entry).shape == (60, 3, 32, 32)
    capsys.readouterr()
    assert main(["finetune", "--data", "digits", "--n", "60", "--model", str(folder), "--lrs", "1e-2", "--epochs",
                 "1", "--executor", "serial", "--no-log"]) == 0
    assert capsys.readouterr().out.split("\n")[1].split()[:3] == ["vit", "digits", "0.01"]
