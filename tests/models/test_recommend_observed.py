"""`recommender recommend` with observed results (issue 12): the LR warm start re-ranks the untried models, a
spread column, validated --observed files, and the loop recommend -> a logged job -> recommend/next."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from recommend_helpers import MODELS, NEW, make_store
from scipy import stats

from recommender.cli import main
from recommender.evaluation.measures import budget_measures
from recommender.history import open_store
from recommender.models.session import pick_preference
from recommender.regret import relative_regret_of_picks


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_store(tmp_path_factory.mktemp("store"))


def table(capsys: pytest.CaptureFixture, url: str, model: str, *argv: str) -> pd.DataFrame:
    """The JSON table of a successful `recommend` call on the store."""
    assert main(["recommend", "--model", model, "--db", url, "--top-k", "12", *argv, "--json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def test_without_observations_the_ranking_is_the_static_prediction(capsys, store):
    """No jobs on the target and no file: the ranking and predicted_z are the recommender's own prediction (exact),
    nothing is observed, and every model has a positive spread."""
    from recommender.models.factory import load_recommender
    from recommender.models.pairs import candidate_pairs
    from recommender.models.recommend import lookup_dataset_row

    url, model = store
    got = table(capsys, url, model, *NEW)
    pairs = open_store(url).pair_table("p")
    est = load_recommender(model)
    row = lookup_dataset_row(pairs, open_store(url).dataset_features(), "target", examples=800.0, classes=10.0,
                             group="g", modality="image")
    candidates = candidate_pairs(pairs, row)
    static = pd.Series(est.predict(candidates), index=candidates["model"]).sort_values(ascending=False, kind="stable")
    assert got["model"].tolist() == static.index.tolist()
    np.testing.assert_allclose(got["predicted_z"], static.to_numpy(), rtol=0, atol=1e-12)  # the same floats
    assert got["observed"].isna().all() and (got["spread"] > 0).all()
    assert main(["recommend", "--model", model, "--db", url, *NEW]) == 0
    assert "used" not in capsys.readouterr().out  # nothing observed: no note


def test_contradicting_observations_move_the_ranking_their_way(capsys, store, tmp_path):
    """The static LR follows the majority (low-index models win on 4 of 5 datasets). Results on the target that
    rise with the index (as on d4) must turn the untried models' ranking around: Spearman of predicted_z with the
    model index goes from negative to positive, and the best untried pick is a high-index model."""
    url, model = store
    index = {m: i for i, m in enumerate(MODELS)}
    static = table(capsys, url, model, *NEW)
    (tmp_path / "obs.csv").write_text("model,performance\nm0,50\nm1,52\nm5,60\nm6,62\n")
    updated = table(capsys, url, model, *NEW, "--observed", str(tmp_path / "obs.csv"))
    untried = updated[updated["observed"].isna()]
    before = static[~static["model"].isin(["m0", "m1", "m5", "m6"])]
    rho = {name: stats.spearmanr(t["model"].map(index), t["predicted_z"]).statistic
           for name, t in (("static", before), ("updated", untried))}
    # four results against eight factors and the LR's prior move the ranking up the index, not all the way
    assert rho["static"] < -0.9 and rho["updated"] > rho["static"] + 0.5, rho
    assert index[untried["model"].iloc[0]] >= 6 > index[before["model"].iloc[0]]  # upper half, from the lower
    tried = updated.set_index("model").loc[["m0", "m1", "m5", "m6"], "observed"]
    assert tried.tolist() == [50.0, 52.0, 60.0, 62.0]
    assert main(["recommend", "--model", model, "--db", url, *NEW, "--observed", str(tmp_path / "obs.csv")]) == 0
    out = capsys.readouterr().out
    assert (f"note: target: used 0 result(s) logged in the store for target under p; 4 from {tmp_path / 'obs.csv'}; "
            "the ranking is the prediction updated with them") in out
    assert "spread" in out.splitlines()[1]


def test_observed_file_errors_name_file_row_column_and_reason(capsys, store, tmp_path):
    url, model = store
    bad = tmp_path / "bad.csv"
    bad.write_text("model,performance\nm0,0.5\nnope,0.4\nm0,x\n")
    assert main(["recommend", "--model", model, "--db", url, *NEW, "--observed", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"recommender recommend: error: {bad}: row 2: model: unknown model 'nope' (not in the protocol's history)",
        f"recommender recommend: error: {bad}: row 3: model: 'm0' repeated (also row 1)",
        f"recommender recommend: error: {bad}: row 3: performance: not a finite number ('x')"]
    (tmp_path / "cols.csv").write_text("name,value\nm0,1\n")
    assert main(["recommend", "--model", model, "--db", url, *NEW, "--observed", str(tmp_path / "cols.csv")]) == 2
    assert "cols.csv: missing column(s) model, performance" in capsys.readouterr().err
    assert main(["recommend", "--model", model, "--db", url, "--datasets", "d0,d1", "--observed", str(bad)]) == 2
    assert "--observed holds results on one dataset" in capsys.readouterr().err


def test_loop_recommend_logged_job_recommend_next(capsys, tmp_path):
    """The loop from the command line, with jobs logged by `history ingest` (as `finetune` logs them): the first
    recommendation's top pick is fine-tuned and logged; `recommend` and `next` then say they used the logged job,
    mark it observed and never propose it again as next."""
    url, model = make_store(tmp_path)  # its own store: the jobs logged here stay out of the other tests'
    capsys.readouterr()
    first = table(capsys, url, model, *NEW)
    picks = [first["model"].iloc[0], first["model"].iloc[-1]]
    for pick, value in zip(picks, (55.0, 65.0), strict=True):  # the logged results contradict the static order
        job = tmp_path / f"{pick}.csv"
        pd.DataFrame([{"model": pick, "dataset": "target", "metric": "top1", "protocol": "p", "value": value}]
                     ).to_csv(job, index=False)
        assert main(["history", "--db", url, "ingest", str(job), "--format", "long"]) == 0
    capsys.readouterr()
    again = table(capsys, url, model, *NEW)
    assert again.set_index("model").loc[picks, "observed"].tolist() == [55.0, 65.0]
    assert again["model"].tolist() != first["model"].tolist()
    assert main(["next", "--db", url, "--dataset", "target", "--protocol", "p", "--strategy", "lr",
                 "--budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "used 2 result(s) logged in the store for target under p" in out
    proposed = [line.split()[1] for line in out.splitlines()[2:]]
    assert len(proposed) == 2 and not set(proposed) & set(picks)


def test_relative_regret_has_one_home_and_models_do_not_import_the_evaluation():
    """The picks' relative regret equals the evaluation's budget measure on the same picks (exact: one formula),
    and importing the adaptive recommenders loads no recommender.evaluation module."""
    truth = np.array([0.3, 0.9, 0.5, 0.7, 0.1])
    for picks in ([2, 0, 3], [4, 1], [0]):
        for budget in (1, 2, 3, 5):
            want = budget_measures(pick_preference(picks, truth.size), truth, budget)["relative_regret"]
            if budget <= len(picks):
                assert relative_regret_of_picks(truth, picks, budget) == want
    assert relative_regret_of_picks(np.array([0.0, -1.0]), [1], 1) != relative_regret_of_picks(
        np.array([0.0, -1.0]), [1], 1)  # NaN where the best is not positive
    code = ("import sys, recommender.models.adaptive, recommender.models.recommend;"
            "print([m for m in sys.modules if m.startswith('recommender.evaluation')])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_results_logged_on_a_dataset_the_store_has_no_facts_of(capsys, tmp_path):
    """A user's own dataset has no facts in the store, so a pair table of one modality leaves it out; its logged
    jobs are still the results observed on it, for `recommend` and `next` under that modality. A job under another
    metric than the protocol's is not comparable: left out, and the note says so (it used to be dropped silently,
    and before that, every job on a dataset without facts)."""
    url, _ = make_store(tmp_path)
    image_lr = str(tmp_path / "lr-image")
    assert main(["train", "--recommender", "lr", "--protocol", "p", "--modality", "image", "--db", url,
                 "--out", image_lr]) == 0
    jobs = pd.DataFrame([{"model": "m3", "dataset": "mine", "metric": "top1", "protocol": "p", "value": 71.0},
                         {"model": "m8", "dataset": "mine", "metric": "top1", "protocol": "p", "value": 52.0},
                         {"model": "m9", "dataset": "mine", "metric": "acc", "protocol": "p", "value": 0.9}])
    jobs.to_csv(tmp_path / "mine.csv", index=False)
    assert main(["history", "--db", url, "ingest", str(tmp_path / "mine.csv")]) == 0
    capsys.readouterr()
    flags = ["--dataset", "mine", "--examples", "800", "--classes", "10", "--group", "g", "--modality", "image"]
    assert main(["recommend", "--model", image_lr, "--db", url, "--top-k", "12", *flags]) == 0
    out = capsys.readouterr().out
    said = "used 2 result(s) logged in the store for mine under p (not used: 1 under metric acc, not top1)"
    assert said in out
    found = table(capsys, url, image_lr, *flags).set_index("model")["observed"]
    assert found.dropna().to_dict() == {"m3": 71.0, "m8": 52.0}
    assert main(["next", "--db", url, "--protocol", "p", "--budget", "3", *flags]) == 0
    out = capsys.readouterr().out
    assert said in out
    proposed = [line.split()[1] for line in out.splitlines()[2:5]]
    assert len(proposed) == 3 and not {"m3", "m8"} & set(proposed)
