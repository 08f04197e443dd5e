"""recommender.models.fit_cache: a fitted `auto` kept between calls is the same `auto`, bit for bit; a write to the
store that changes the training history, another request, changed code or a damaged entry fits again, a write that
leaves the history as it was does not; a cache that cannot be written costs time, never the answer. And
`Store.revision`, which the first key rests on."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender import kept
from recommender.history import open_store
from recommender.history.ingest import ingest_file
from recommender.kept import prune
from recommender.models.auto import Auto
from recommender.models.fit_cache import fits_folder, fitted_auto

MODELS = [f"m{i}" for i in range(10)]


def _jobs(datasets: range, seed: int) -> pd.DataFrame:
    """Jobs of 10 models on image datasets under protocols p and q, where a model's quality carries over."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(0, 1, len(MODELS))
    return pd.DataFrame([{"model": m, "dataset": f"d{d}", "metric": "top1", "protocol": "pq"[d % 2],
                          "value": round(float(quality[i] + rng.normal(0, 0.3)), 4)}
                         for d in datasets for i, m in enumerate(MODELS)])


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store of 10 models x 6 image datasets, and an empty cache folder of the test's own."""
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    db = open_store(f"sqlite:///{tmp_path / 'h.db'}", create=True)
    datasets = pd.DataFrame({"dataset": [f"d{d}" for d in range(7)], "modality": "image"})
    datasets.to_csv(tmp_path / "datasets.csv", index=False)
    ingest_file(db, tmp_path / "datasets.csv", kind="datasets")
    _jobs(range(6), 0).to_csv(tmp_path / "jobs.csv", index=False)
    ingest_file(db, tmp_path / "jobs.csv", kind="jobs")
    return db


def _counting(store, calls: list[int]) -> tuple[Callable[[], pd.DataFrame], Callable[[pd.DataFrame], Auto]]:
    """The store's image history, and a fit of `auto` on it that counts its calls."""
    def fit(history: pd.DataFrame) -> Auto:
        calls.append(1)
        return Auto().fit(history)
    return (lambda: store.scored_history("image")[0]), fit


CANDIDATES = pd.DataFrame({"model": MODELS, "dataset": "new", "protocol": "p"})


def _same(a: Auto, b: Auto) -> None:
    """Equal fitted state and bitwise equal answers, alone and given observed results."""
    observed = pd.DataFrame({"model": MODELS[:5], "dataset": "new", "performance": [0.1, 0.5, 0.2, 0.9, 0.4]})
    for given in (None, observed):
        np.testing.assert_array_equal(a.predict(CANDIDATES, observed=given), b.predict(CANDIDATES, observed=given))
        np.testing.assert_array_equal(a.spread(CANDIDATES, observed=given), b.spread(CANDIDATES, observed=given))
        pd.testing.assert_frame_equal(a.explain(CANDIDATES, observed=given), b.explain(CANDIDATES, observed=given))
    assert a.get_params() == b.get_params() and a.sources_ == b.sources_ and a.fallback_ == b.fallback_
    np.testing.assert_array_equal(a.intercepts_, b.intercepts_)
    assert (a.slope_, a.shrinkage_, a.spread_factor_) == (b.slope_, b.shrinkage_, b.spread_factor_)
    pd.testing.assert_frame_equal(a.history_, b.history_)
    pd.testing.assert_frame_equal(a.inner_taus_, b.inner_taus_)


def test_state_round_trip_gives_the_same_auto() -> None:
    history = _jobs(range(6), 1).rename(columns={"value": "performance"}).drop(columns="metric")
    history["score_s"] = history["performance"] + np.random.default_rng(2).normal(0, 0.2, len(history))
    fitted = Auto(scores=("s",), shrinkage=0.0).fit(history)
    values, tables = fitted.get_state()
    again = Auto.from_state(json.loads(json.dumps(values)), tables)
    _same(fitted, again)
    assert isinstance(again.scores, tuple) and again.shrinkage_ == 0.0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sources", "history", "sources must be a list of names"),
    ("intercepts", [0.1], "intercepts must hold one number or null per source"),
    ("slope", float("nan"), "slope, shrinkage and spread_factor must be finite numbers"),
    ("fallback", "nope", "fallback must be null or a source"),
    ("params", {"shrinkage": 2.0}, "shrinkage"),
])
def test_a_wrong_state_field_is_refused(field: str, value: object, message: str) -> None:
    history = _jobs(range(4), 3).rename(columns={"value": "performance"}).drop(columns="metric")
    values, tables = Auto().fit(history).get_state()
    with pytest.raises(ValueError, match=message):
        Auto.from_state({**values, field: value}, tables)


def test_a_second_call_reads_the_fit_and_a_write_to_the_store_refits(store, tmp_path: Path) -> None:
    calls: list[int] = []
    first = fitted_auto(store, {"for": "test"}, *_counting(store, calls))
    second = fitted_auto(open_store(store.url), {"for": "test"}, *_counting(store, calls))
    assert len(calls) == 1
    _same(first, second)
    assert fitted_auto(store, {"for": "another"}, *_counting(store, calls)) is not None and len(calls) == 2

    _jobs(range(6, 7), 4).to_csv(tmp_path / "more.csv", index=False)  # a new dataset: the history has changed
    ingest_file(store, tmp_path / "more.csv", kind="jobs")
    third = fitted_auto(store, {"for": "test"}, *_counting(store, calls))
    assert len(calls) == 3 and third.history_["dataset"].nunique() == 7


def test_changed_code_refits(store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fitted_auto(store, {}, *_counting(store, calls))
    monkeypatch.setattr(kept, "code_fingerprint", lambda: "another version")
    fitted_auto(store, {}, *_counting(store, calls))
    assert len(calls) == 2


def test_a_cache_that_cannot_be_touched_still_answers(store, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    first = fitted_auto(store, {}, *_counting(store, calls))

    def refuse(*args: object) -> None:
        raise PermissionError("another user's cache")

    monkeypatch.setattr(kept.os, "utime", refuse)  # marking the entry used fails: the entry still serves
    _same(first, fitted_auto(store, {}, *_counting(store, calls)))
    assert len(calls) == 1


def test_a_fit_during_which_the_store_changed_is_kept_for_its_history_only(store, tmp_path: Path) -> None:
    calls: list[int] = []
    history, fit = _counting(store, calls)

    def fit_then_write(train: pd.DataFrame) -> Auto:
        fitted = fit(train)
        _jobs(range(6, 7), 5).to_csv(tmp_path / "meanwhile.csv", index=False)
        ingest_file(store, tmp_path / "meanwhile.csv", kind="jobs")  # another process writes during the fit
        return fitted

    fitted_auto(store, {}, history, fit_then_write)
    # the fit saw the older rows: kept under their content, not under the store's revision, which it does not hold
    assert len(list(fits_folder().glob("*.json"))) == 1
    assert fitted_auto(store, {}, history, fit).history_["dataset"].nunique() == 7 and len(calls) == 2


def test_a_write_that_leaves_the_training_history_as_it_was_reads_the_fit(store, tmp_path: Path) -> None:
    """A user logs a result on their own dataset (no facts: not in the image history the fit learns from): the
    store's revision moves, the fit is read by the history's content, not fitted again, and answers the same."""
    calls: list[int] = []
    first = fitted_auto(store, {}, *_counting(store, calls))
    before = store.revision()
    pd.DataFrame([{"model": "m1", "dataset": "mine", "metric": "top1", "protocol": "p", "value": 0.7}]).to_csv(
        tmp_path / "mine.csv", index=False)
    ingest_file(store, tmp_path / "mine.csv", kind="jobs")
    assert store.revision() != before
    _same(first, fitted_auto(store, {}, *_counting(store, calls)))
    assert len(calls) == 1
    fitted_auto(store, {"for": "another request"}, *_counting(store, calls))  # the request is in both keys
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["table bytes", "json", "field", "missing table", "table name"])
def test_a_damaged_entry_is_fitted_again_and_replaced(store, damage: str) -> None:
    calls: list[int] = []
    first = fitted_auto(store, {}, *_counting(store, calls))
    entries = list(fits_folder().glob("*.json"))
    assert len(entries) == 2  # under the store's revision and under the history's content: both damaged
    for entry in entries:
        table = entry.with_name(f"{entry.stem}.history.arrow")
        if damage == "table bytes":
            table.write_bytes(table.read_bytes()[:-10])
        elif damage == "json":
            entry.write_text("{not json")
        elif damage == "field":
            state = json.loads(entry.read_text())
            state["values"]["intercepts"] = "x"
            entry.write_text(json.dumps(state))
        elif damage == "table name":  # tables other than auto's own are never read, checksum or not
            state = json.loads(entry.read_text())
            state["tables"]["extra"] = state["tables"]["history"]
            table.with_name(f"{entry.stem}.extra.arrow").write_bytes(table.read_bytes())
            entry.write_text(json.dumps(state))
        else:
            table.unlink()
    again = fitted_auto(store, {}, *_counting(store, calls))
    assert len(calls) == 2
    _same(first, again)
    fitted_auto(store, {}, *_counting(store, calls))  # the entry was replaced: read, not fitted
    assert len(calls) == 2


def test_an_unwritable_cache_warns_and_still_answers(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "file"))
    calls: list[int] = []
    with pytest.warns(UserWarning, match="could not keep the fitted auto in"):
        fitted = fitted_auto(store, {}, *_counting(store, calls))
    assert fitted.history_["dataset"].nunique() == 6 and len(calls) == 1


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"k{i}.json").write_text("{}")
        (tmp_path / f"k{i}.history.arrow").write_text("")
        stamp = 1_000_000 + (10 - i if i == 4 else i)  # k4 was used last
        os.utime(tmp_path / f"k{i}.json", (stamp, stamp))
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k3.history.arrow", "k3.json", "k4.history.arrow",
                                                          "k4.json"]


def test_revision_moves_with_every_write_and_only_then(store, tmp_path: Path) -> None:
    before = store.revision()
    store.pair_table("all", "image")  # reading leaves it
    assert open_store(store.url).revision() == before
    _jobs(range(6), 0).to_csv(tmp_path / "same.csv", index=False)
    assert ingest_file(store, tmp_path / "same.csv", kind="jobs")["jobs"] == 0  # nothing new: nothing changes
    assert store.revision() == before
    # a changed fact keeps every count: the revision alone tells
    pd.DataFrame({"dataset": ["d0"], "modality": ["image"], "classes": [10]}).to_csv(tmp_path / "d.csv", index=False)
    ingest_file(store, tmp_path / "d.csv", kind="datasets", replace=True)
    after = store.revision()
    assert after != before and after.split(";")[1] == before.split(";")[1]
