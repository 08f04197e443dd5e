"""Learned recommenders on the bundled SHiFT vision history: the LOO smoke test and the train/recommend CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy.stats import weightedtau

from recommender.cli import main
from recommender.history import open_store
from recommender.models import load_recommender, make_recommender, normalise_target


@pytest.fixture(scope="module")
def vision(bundled_store_url: str) -> pd.DataFrame:
    """SHiFT vision VTAB-1k pairs with the stored LogME scores."""
    return open_store(bundled_store_url).pair_table("vtab1k", modality="image", scores=["logme"])


def mean_normalised_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Task-agnostic: each model's mean within-dataset z-scored performance over the training datasets."""
    z = train.assign(z=normalise_target(train["performance"].to_numpy(), train["dataset"]))
    means = z.groupby("model")["z"].mean()
    return test["model"].map(means).fillna(means.min()).to_numpy()


@pytest.mark.parametrize("kind", ["lr", pytest.param("fm", marks=pytest.mark.slow)])
def test_learned_beats_task_agnostic_baseline_on_two_loo_folds(vision, kind):
    """Leave-one-dataset-out on the first two datasets (alphabetically) that have stored LogME scores:
    the recommender's weighted tau (scipy defaults), averaged over the folds, beats the baseline's."""
    folds = sorted(vision.loc[vision["score_logme"].notna(), "dataset"].unique())[:2]
    learned, baseline = [], []
    for held in folds:
        train, test = vision[vision["dataset"] != held], vision[vision["dataset"] == held]
        est = make_recommender(kind, features="d,m,logme").fit(train.drop(columns="performance"),
                                                               train["performance"])
        truth = test["performance"].to_numpy()
        learned.append(weightedtau(est.predict(test.drop(columns="performance")), truth).statistic)
        baseline.append(weightedtau(mean_normalised_baseline(train, test), truth).statistic)
    assert np.mean(learned) > np.mean(baseline), (folds, learned, baseline)


@pytest.fixture(scope="module")
def trained_fm(bundled_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An FM trained by the CLI on the SHiFT vision pairs."""
    folder = str(tmp_path_factory.mktemp("fm"))
    assert main(["train", "--recommender", "fm", "--modality", "image", "--param", "epochs=60",
                 "--db", bundled_store_url, "--out", folder]) == 0
    return folder


@pytest.mark.slow
def test_train_writes_a_loadable_recommender(trained_fm, vision):
    """The saved FM predicts the store's pairs finitely and records what it was trained on."""
    est = load_recommender(trained_fm)
    assert est.kind == "fm" and est.epochs == 60
    assert np.isfinite(est.predict(vision)).all()
    with open(f"{trained_fm}/recommender.json") as fh:
        training = json.load(fh)["training"]
    assert training["pairs"] == len(vision) and training["protocol"] == "vtab1k"
    assert training["modalities"] == ["image"] and est.training_ == training


@pytest.mark.slow
def test_recommend_known_dataset_matches_the_api(cli, bundled_store_url, trained_fm, vision):
    """The CLI's top-k equals ranking the store's models with the loaded recommender directly."""
    code, out, _ = cli("recommend", "--model", trained_fm, "--dataset", "dtd", "--top-k", "5",
                       "--db", bundled_store_url, "--json")
    assert code == 0
    rows = json.loads(out)
    pool = vision.drop_duplicates("model").assign(**vision[vision["dataset"] == "dtd"].iloc[0][
        ["dataset", "examples", "classes", "modality", "group"]].to_dict())
    predicted = load_recommender(trained_fm).predict(pool)
    want = pool["model"].to_numpy()[np.argsort(-predicted, kind="stable")[:5]]
    assert [r["model"] for r in rows] == list(want)
    np.testing.assert_allclose([r["predicted_z"] for r in rows], np.sort(predicted)[::-1][:5], rtol=1e-12)


@pytest.mark.slow
def test_recommend_new_dataset_and_pool_file(cli, bundled_store_url, trained_fm, tmp_path):
    """A dataset not in the store is described by flags; a pool file may hold a never-seen model."""
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"model": ["google/vit-base-patch16-224", "my/new-model"],
                  "family": [None, "vit"], "params_m": [None, 86.0]}).to_csv(pool, index=False)
    code, out, _ = cli("recommend", "--model", trained_fm, "--dataset", "my-new-task", "--classes", "5",
                       "--examples", "800", "--group", "vtab-natural", "--modality", "image", "--pool", str(pool),
                       "--top-k", "3", "--db", bundled_store_url, "--csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    assert sorted(table["model"]) == ["google/vit-base-patch16-224", "my/new-model"]
    assert np.isfinite(table["predicted_z"]).all() and table["predicted_z"].is_monotonic_decreasing


@pytest.mark.slow
def test_train_with_tuning_keeps_the_study_in_the_store(cli, bundled_store_url, tmp_path):
    """--tune N runs N Optuna trials whose study lives in the store's database."""
    code, out, _ = cli("train", "--recommender", "lr", "--modality", "image", "--tune", "2",
                       "--db", bundled_store_url, "--out", str(tmp_path / "lr"))
    assert code == 0 and "trained lr" in out
    studies = optuna.get_all_study_summaries(storage=bundled_store_url)
    assert any(s.study_name.startswith("recommender-lr-") and s.n_trials == 2 for s in studies)


@pytest.mark.slow
def test_cli_errors_are_one_line(cli, bundled_store_url, trained_fm, tmp_path):
    """Bad hyper-parameters, missing scores and unknown folders exit 2 with one line naming the problem."""
    code, _, err = cli("train", "--recommender", "fm", "--param", "loss=hinge", "--modality", "image",
                       "--db", bundled_store_url, "--out", str(tmp_path / "x"))
    assert code == 2 and "FMRecommender: loss='hinge' must be one of mse, pairwise" in err and err.count("\n") == 1
    code, _, err = cli("recommend", "--model", str(tmp_path), "--dataset", "dtd", "--db", bundled_store_url)
    assert code == 2 and "no saved recommender" in err


@pytest.mark.slow
def test_recommend_new_dataset_with_a_scores_file(cli, bundled_store_url, tmp_path):
    """An LR on d,m,logme ranks a new dataset by the LogME values of a long-format scores file."""
    assert cli("train", "--recommender", "lr", "--features", "d,m,logme", "--modality", "image",
               "--db", bundled_store_url, "--out", str(tmp_path / "lr"))[0] == 0
    models = ["google/vit-base-patch16-224", "facebook/deit-tiny-patch16-224", "microsoft/resnet-50"]
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"model": models, "score": "logme", "value": [0.1, 0.5, 0.3]}).to_csv(scores, index=False)
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"model": models}).to_csv(pool, index=False)
    argv = ["recommend", "--model", str(tmp_path / "lr"), "--dataset", "fresh", "--classes", "10", "--pool",
            str(pool), "--db", bundled_store_url, "--json"]
    code, out, _ = cli(*argv, "--scores", str(scores))
    assert code == 0
    with_scores = {r["model"]: r["predicted_z"] for r in json.loads(out)}
    flipped = tmp_path / "flipped.csv"
    pd.DataFrame({"model": models, "score": "logme", "value": [0.5, 0.1, 0.3]}).to_csv(flipped, index=False)
    code, out, _ = cli(*argv, "--scores", str(flipped))
    swapped = {r["model"]: r["predicted_z"] for r in json.loads(out)}
    # swapping two models' LogME moves their predictions in opposite directions by the same amount
    assert swapped[models[0]] - with_scores[models[0]] == pytest.approx(with_scores[models[1]] - swapped[models[1]])
    assert swapped[models[0]] != pytest.approx(with_scores[models[0]])
    code, _, err = cli(*argv)
    assert code == 2 and "pass --scores FILE" in err
