"""recommender.models.calibration: the factor that turns the warm start's posterior std into a 68% half-width,
checked on datasets the training never saw, and saved by `train` for `recommend` to print."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from recommender.models.calibration import spread_factor
from recommender.models.factory import make_recommender
from recommender.models.warm_start import WARM_START, model_factors, warm_update


def _pairs(n_datasets: int, seed: int, first: int = 0) -> pd.DataFrame:
    """30 models whose results follow a shared quality plus dataset-specific noise (sd 0.7 of the quality's)."""
    quality = np.random.default_rng(99).normal(size=30)  # one world: every call shares the models
    rng = np.random.default_rng(seed)
    rows = [{"model": f"m{m}", "dataset": f"d{first + d}", "performance": 50 + 5 * (q + 0.7 * rng.normal())}
            for d in range(n_datasets) for m, q in enumerate(quality)]
    facts = ["family", "pretrain_dataset", "params_m", "gmacs", "input_size", "imagenet_top1", "group", "modality",
             "examples", "classes"]  # unknown: the d,m features rest on the ids
    return pd.DataFrame(rows).reindex(columns=["model", "dataset", "performance", *facts])


@pytest.mark.slow
def test_held_out_results_fall_inside_the_calibrated_interval_68_percent_of_the_time() -> None:
    # three histories, each checked on 12 new datasets x 30 models: 1,080 results, binomial standard error 0.014,
    # and each factor rests on its 10 held-out training datasets (300 results): 0.60-0.76 allows for both
    inside = []
    for seed in (1, 3, 5):
        train = _pairs(10, seed=seed)
        est = make_recommender("lr", features="d,m").fit(train)
        factor, measured = spread_factor(est, train)
        assert measured == 10  # every training dataset held out, up to MAX_FOLDS
        factors = model_factors(train)
        for _, rows in _pairs(12, seed=seed + 1, first=100).groupby("dataset"):
            predicted = est.predict(rows.drop(columns="performance"))
            _, std = warm_update(predicted, rows["model"].to_numpy(), pd.Series(dtype=float), factors, WARM_START)
            z = (rows["performance"] - rows["performance"].mean()) / rows["performance"].std(ddof=0)
            inside.extend(np.abs(z.to_numpy() - predicted) <= factor * std)
    assert 0.60 <= np.mean(inside) <= 0.76


def test_no_factor_for_a_raw_target_or_a_single_dataset() -> None:
    train = _pairs(4, seed=3)
    assert spread_factor(make_recommender("lr", features="d,m", target="raw").fit(train), train) is None
    one = _pairs(1, seed=4)
    assert spread_factor(make_recommender("lr", features="d,m").fit(one), one) is None


def test_train_saves_the_factor_and_recommend_prints_the_calibrated_spread(cli, tmp_path, empty_store_url) -> None:
    from recommender.history import open_store
    from recommender.history.ingest import ingest_file

    jobs = _pairs(6, seed=5)[["model", "dataset", "performance"]].rename(columns={"performance": "value"}).assign(
        metric="top1", protocol="p")
    jobs.to_csv(tmp_path / "jobs.csv", index=False)
    ingest_file(open_store(empty_store_url), tmp_path / "jobs.csv")
    out = cli("train", "--db", empty_store_url, "--recommender", "lr", "--protocol", "p", "--out", tmp_path / "lr")
    assert out.code == 0, out.err
    from recommender.models.factory import load_recommender

    saved = load_recommender(tmp_path / "lr")
    assert saved.training_["spread_datasets"] == 6 and saved.training_["spread_factor"] > 0  # every dataset
    shown = cli("recommend", "--db", empty_store_url, "--model", tmp_path / "lr", "--dataset", "d0", "--json")
    assert shown.code == 0, shown.err
    plain = cli("recommend", "--db", empty_store_url, "--model", tmp_path / "lr", "--dataset", "d0")
    assert "spread: half-width of its 68% interval (calibrated on 6 held-out training datasets)" in plain.out
    rows = pd.read_json(io.StringIO(shown.out))
    assert (rows["spread"] > 0).all()


def test_a_table_with_repeated_index_labels_is_calibrated_as_its_reset_copy() -> None:
    train = pd.concat([_pairs(3, seed=1), _pairs(3, seed=2, first=3)])  # labels 0..89 twice
    est = make_recommender("lr", features="d,m").fit(train)
    assert spread_factor(est, train) == spread_factor(est, train.reset_index(drop=True))
