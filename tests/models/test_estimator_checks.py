"""scikit-learn-style common checks over every learned recommender and every strategy of the catalog.

Recommenders come from ``recommender.models.factory.RECOMMENDERS`` through ``make_recommender``; strategies from
``make_strategy`` on one spec per form of the catalog's mini-language, built from the catalog's own lists, so a
recommender kind, task-agnostic ranking or adaptive kind added there is checked here without editing this file
(and a new Strategy class that no spec reaches fails ``test_every_strategy_class_is_reached``).
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import Ridge

import recommender.evaluation.factory  # noqa: F401  (registers every Strategy subclass the package defines)
from recommender.errors import UserError
from recommender.evaluation import catalog
from recommender.evaluation.factory import make_strategy
from recommender.evaluation.strategies import Strategy, without_truth
from recommender.models import load_recommender, make_recommender
from recommender.models.adaptive import ADAPTIVE, make_adaptive
from recommender.models.estimator import Estimator
from recommender.models.factory import RECOMMENDERS
from recommender.models.params import Validated

SCORE = "good"  # the tiny table's score column that tracks performance
FAST = {"fm": {"epochs": 10}}  # enough to move every FM weight; the checks are about plumbing, not accuracy
AGNOSTIC = ["mean-perf", *catalog.AGNOSTIC]
SPECS = [
    "oracle", "random", *AGNOSTIC, f"score:{SCORE}",
    *(f"hybrid:{a}:{SCORE}" for a in AGNOSTIC),
    *RECOMMENDERS, *(f"{k}+{SCORE}" for k in RECOMMENDERS),
    *(f"learned-hybrid:{k}:{SCORE}" for k in RECOMMENDERS),
    *(f"adaptive:{k}" for k in catalog.ADAPTIVE),
    "history-accuracy", f"stack+{SCORE}", f"stack-lr+{SCORE}", "auto", f"auto+{SCORE}",
    *(f"auto:{k}" for k in RECOMMENDERS), f"auto:stack+{SCORE}",
]
BUDGET = 1  # in every strategy's default budgets


def specs(*slow: str) -> list:
    """SPECS as parameters, the named ones marked slow (over 5 s on 2 busy cores: the first fit of an FM hybrid, the
    blend's inner folds)."""
    return [pytest.param(s, marks=pytest.mark.slow) if s in slow else s for s in SPECS]


def split(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on every dataset but the last; test on the last."""
    last = pairs["dataset"] == sorted(pairs["dataset"].unique())[-1]
    return pairs[~last].reset_index(drop=True), pairs[last].reset_index(drop=True)


def unseen(test: pd.DataFrame) -> pd.DataFrame:
    """The test rows moved to a never-seen dataset, plus one never-seen model with a known model's facts."""
    rows = test.assign(dataset="never-seen-dataset", classes=37.0)
    new_model = rows.head(1).assign(model="never-seen/model", family="never-seen-family")
    return pd.concat([rows, new_model], ignore_index=True)


def same_params(a: BaseEstimator, b: BaseEstimator) -> bool:
    """Equal constructor parameters, comparing nested estimators by type and parameters rather than identity."""
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    if type(a) is not type(b) or set(pa) != set(pb):
        return False
    return all(same_params(v, pb[k]) if hasattr(v, "get_params") else v == pb[k] for k, v in pa.items())


def fitted_attributes(est: BaseEstimator) -> list[str]:
    """Attributes set by fit (scikit-learn's trailing-underscore convention)."""
    return [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def state(est: object) -> bytes:
    """Everything an estimator holds, as bytes: equal bytes, unchanged estimator."""
    return pickle.dumps(vars(est))


def subclasses(cls: type) -> set[type]:
    """Every subclass of cls defined in the package, however deep."""
    found = {c for s in cls.__subclasses__() for c in {s} | subclasses(s)}
    return {c for c in found if c.__module__.startswith("recommender.")}


# --- the parameter protocol, against scikit-learn's own ------------------------------------------------------------

class OursOuter(Estimator):
    def __init__(self, inner: object = None, alpha: float = 1.0, name: str = "x"):
        self.inner, self.alpha, self.name = inner, alpha, name


class TheirsOuter(BaseEstimator):
    def __init__(self, inner: object = None, alpha: float = 1.0, name: str = "x"):
        self.inner, self.alpha, self.name = inner, alpha, name


@pytest.mark.parametrize("inner", [None, Ridge(alpha=3.0), OursOuter(alpha=2.0)])
def test_estimator_params_follow_scikit_learn(inner):
    """get_params (shallow and deep), set_params with nested keys, clone and the repr agree with BaseEstimator's."""
    ours, theirs = (cls(inner=clone(inner, safe=False), alpha=0.5) for cls in (OursOuter, TheirsOuter))
    for deep in (False, True):
        a, b = ours.get_params(deep=deep), theirs.get_params(deep=deep)
        assert a.keys() == b.keys()
        assert all(same_params(v, b[k]) if hasattr(v, "get_params") else v == b[k] for k, v in a.items())
    if inner is not None:
        ours.set_params(inner__alpha=7.0, name="y")
        theirs.set_params(inner__alpha=7.0, name="y")
        assert ours.inner.alpha == theirs.inner.alpha == 7.0 and ours.name == theirs.name == "y"
    copy = clone(ours)
    assert copy is not ours and (inner is None or copy.inner is not ours.inner) and same_params(copy, ours)
    assert repr(OursOuter(alpha=0.5)) == "OursOuter(alpha=0.5)"
    assert repr(TheirsOuter(alpha=0.5)) == "TheirsOuter(alpha=0.5)"
    with pytest.raises(ValueError, match="no_such"):
        ours.set_params(no_such=1)
    with pytest.raises(ValueError, match="no_such"):
        theirs.set_params(no_such=1)


# --- recommenders ---------------------------------------------------------------------------------------------------

def recommender(kind: str):
    """An unfitted recommender of this kind on d,m and the tiny table's score, fast settings."""
    return make_recommender(kind, features=f"d,m,{SCORE}", **FAST.get(kind, {}))


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_clone_is_an_unfitted_equal_copy(kind, tiny_pairs):
    est = recommender(kind).fit(without_truth(tiny_pairs), tiny_pairs["performance"])
    copy = clone(est)
    assert copy is not est and same_params(copy, est) and copy.get_params() == est.get_params()
    assert fitted_attributes(est) and not fitted_attributes(copy)


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_fit_adds_only_fitted_attributes_and_predict_changes_nothing(kind, tiny_pairs):
    est = recommender(kind)
    before = dict(vars(est))
    est.fit(without_truth(tiny_pairs), tiny_pairs["performance"])
    added = set(vars(est)) - set(before)
    assert added and all(k.endswith("_") for k in added), sorted(added)
    assert all(vars(est)[k] is v for k, v in before.items())  # the parameters are left as given
    held = state(est)
    est.predict(without_truth(unseen(tiny_pairs)))
    assert state(est) == held


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_params_round_trip(kind):
    est = recommender(kind)
    params = est.get_params()
    assert type(est)(**params).get_params() == params  # the constructor stores its arguments untouched
    other = make_recommender(kind)
    assert other.set_params(**params) is other and other.get_params() == params
    with pytest.raises(ValueError, match="no_such_param"):
        other.set_params(no_such_param=1)


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_fits_and_predicts_seen_and_unseen_ids(kind, tiny_pairs):
    """Finite scores, one per row, for the test dataset's models and for a new dataset and a new model."""
    train, test = split(tiny_pairs)
    est = recommender(kind).fit(without_truth(train), train["performance"])
    for rows in (without_truth(test), without_truth(unseen(test))):
        pred = est.predict(rows)
        assert pred.shape == (len(rows),) and np.isfinite(pred).all()


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_save_load_gives_identical_predictions(kind, tiny_pairs, tmp_path):
    train, test = split(tiny_pairs)
    est = recommender(kind).fit(without_truth(train), train["performance"])
    back = load_recommender(est.save(tmp_path / "model"))
    assert type(back) is type(est) and back.get_params() == est.get_params()
    rows = without_truth(unseen(test))
    np.testing.assert_array_equal(back.predict(rows), est.predict(rows))


@pytest.mark.parametrize("kind", RECOMMENDERS)
def test_recommender_refit_with_the_same_seed_is_identical(kind, tiny_pairs):
    train, test = split(tiny_pairs)
    runs = [recommender(kind).fit(without_truth(train), train["performance"]).predict(without_truth(test))
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


# --- strategies -----------------------------------------------------------------------------------------------------

def fit_strategy(spec: str, train: pd.DataFrame) -> Strategy:
    """make_strategy(spec) fitted on train (the tiny table holds every column a spec here reads: no skip)."""
    return make_strategy(spec).fit(train)


def predict(strategy: Strategy, test: pd.DataFrame) -> np.ndarray:
    """Predictions as the runner asks for them: the truth only for strategies that need it, at a budget."""
    return strategy.predict(test if strategy.needs_truth else without_truth(test), budget=BUDGET)


@pytest.fixture(scope="module")
def fitted_strategies() -> dict[str, Strategy]:
    """Strategies fitted once per module (each is refitted once more by the determinism check)."""
    return {}


def fitted(spec: str, train: pd.DataFrame, cache: dict[str, Strategy]) -> Strategy:
    """The strategy of spec fitted on train, from the module's cache."""
    if spec not in cache:
        cache[spec] = fit_strategy(spec, train)
    return cache[spec]


def test_every_strategy_class_is_reached():
    """Each concrete Strategy subclass of the package is built by some spec checked here."""
    package = subclasses(Strategy)
    reached = set()
    for spec in SPECS:
        strategy = make_strategy(spec)
        reached |= {type(strategy)} | {type(v) for v in strategy.get_params().values() if isinstance(v, Strategy)}
    assert package <= reached, f"no spec here builds {sorted(c.__name__ for c in package - reached)}"


@pytest.mark.parametrize("spec", specs(f"learned-hybrid:fm:{SCORE}"))
def test_strategy_clone_and_params_round_trip(spec, tiny_pairs, fitted_strategies):
    strategy = make_strategy(spec)
    copy = clone(strategy)
    assert copy is not strategy and same_params(copy, strategy)
    again = clone(strategy)
    assert again.set_params(**strategy.get_params(deep=False)) is again and same_params(again, strategy)
    train, _ = split(tiny_pairs)
    fit = fitted(spec, train, fitted_strategies)
    assert not fitted_attributes(clone(fit)) and same_params(clone(fit), strategy)


@pytest.mark.parametrize("spec", specs(f"learned-hybrid:fm:{SCORE}"))
def test_strategy_fits_and_predicts_seen_and_unseen_ids(spec, tiny_pairs, fitted_strategies):
    """One number per row, never infinite: finite on the training pairs (every model and dataset seen); NaN (no
    opinion) is allowed on the held-out dataset and for a never-seen model or dataset."""
    train, test = split(tiny_pairs)
    strategy = fitted(spec, train, fitted_strategies)
    pred = predict(strategy, train)
    assert pred.shape == (len(train),) and np.isfinite(pred).all()
    for rows in (test, unseen(test)):
        pred = predict(strategy, rows)
        assert pred.shape == (len(rows),) and not np.isinf(pred).any()


@pytest.mark.parametrize("spec", specs("adaptive:blend"))
def test_strategy_refit_gives_identical_predictions(spec, tiny_pairs, fitted_strategies):
    train, test = split(tiny_pairs)
    first = predict(fitted(spec, train, fitted_strategies), unseen(test))
    second = predict(fit_strategy(spec, train), unseen(test))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("spec", SPECS)
def test_strategy_fit_adds_only_fitted_attributes_and_predict_changes_nothing(spec, tiny_pairs):
    """fit sets its parameters aside and adds only `name_` attributes; predict (on seen and unseen ids, at a
    budget) leaves everything the strategy holds as it was."""
    train, test = split(tiny_pairs)
    strategy = make_strategy(spec)
    before = dict(vars(strategy))
    strategy.fit(train)
    added = set(vars(strategy)) - set(before)
    assert all(k.endswith("_") and not k.startswith("_") for k in added), sorted(added)
    assert all(vars(strategy)[k] is v for k, v in before.items())
    held = state(strategy)
    for rows in (train, test, unseen(test)):
        predict(strategy, rows)
    assert state(strategy) == held


# --- adaptive recommenders ----------------------------------------------------------------------------------------

ADAPTIVE_KINDS = [*ADAPTIVE, "ucb"]


@pytest.mark.parametrize("kind", ADAPTIVE_KINDS)
def test_adaptive_fit_adds_only_fitted_attributes_and_a_session_changes_nothing(kind, tiny_pairs):
    train, test = split(tiny_pairs)
    est = make_adaptive(kind, budgets=(1, 2))
    before = dict(vars(est))
    est.fit(train)
    added = set(vars(est)) - set(before)
    assert added and all(k.endswith("_") and not k.startswith("_") for k in added), sorted(added)
    assert all(vars(est)[k] is v for k, v in before.items())
    copy = clone(est)
    assert same_params(copy, est) and not fitted_attributes(copy)
    held = state(est)
    ranking = est.session(without_truth(test)).rank([0, 1], test["performance"].to_numpy()[:2], explain=True)
    assert ranking.score.shape == (len(test),) and not np.isinf(ranking.score).any()
    assert state(est) == held


# --- the parameter tables ------------------------------------------------------------------------------------------

def valid_estimators() -> list[Validated]:
    """One valid, unfitted estimator of each kind the package builds: every strategy of SPECS, with the rankings
    nested in them, every adaptive recommender, the pair recommenders and the cost model."""
    from recommender.models.cost import CostModel
    from recommender.models.fm import FMRecommender
    from recommender.models.linear import LinearRecommender

    out: list[Validated] = []
    for est in [*(make_strategy(spec) for spec in SPECS), *(make_adaptive(k) for k in ADAPTIVE_KINDS),
                LinearRecommender(), FMRecommender(), CostModel()]:
        out += [est, *(v for v in est.get_params().values() if isinstance(v, Validated))]
    return out


def test_every_estimator_has_one_parameter_table_and_is_reached():
    """Each concrete Validated class of the package lists exactly its constructor's parameters, and a valid
    instance of it is checked below."""
    reached = {type(e) for e in valid_estimators()}
    for cls in subclasses(Validated):
        if inspect.isabstract(cls):
            continue
        assert set(cls.PARAMETERS) == set(cls._param_names()), cls.__name__
        assert cls in reached or cls is Strategy, f"no valid {cls.__name__} is checked"


@pytest.mark.parametrize("index", range(len(valid_estimators())))
def test_a_bad_parameter_is_one_line_naming_it_at_fit(index, tiny_pairs):
    """Each parameter of each estimator, set to a value no rule admits, is refused by fit in one line that names
    the estimator and the parameter; the valid estimator itself passes its own check."""
    est = valid_estimators()[index]
    est._validate_params()
    for name in est.PARAMETERS:
        bad = clone(est).set_params(**{name: object()})
        with pytest.raises(UserError, match=rf"^{type(est).__name__}: {name}=<object object at \w+> must be ") as err:
            bad.fit(tiny_pairs)
        assert "\n" not in str(err.value)


def test_bad_hyper_parameters_are_refused_before_any_work(tiny_pairs):
    from recommender.evaluation.strategies import Hybrid
    from recommender.models.similarity import SimilaritySearch

    with pytest.raises(UserError, match=r"^SimilaritySearch: beta='oops' must be None or a finite number >= 0$"):
        SimilaritySearch(beta="oops", shrink=-4).fit(tiny_pairs)
    with pytest.raises(UserError, match=r"^SimilaritySearch: shrink=-4 must be None or a finite number >= 0$"):
        SimilaritySearch(shrink=-4).fit(tiny_pairs)
    with pytest.raises(UserError, match=r"^Hybrid: budgets=\(0, -3\) must be a non-empty tuple, each item an integer"):
        Hybrid(make_strategy("imagenet"), make_strategy(f"score:{SCORE}"), budgets=(0, -3)).fit(tiny_pairs)
    with pytest.raises(UserError, match=r"^Stacked: transform='log' must be one of z, rank$"):
        make_strategy(f"stack+{SCORE}").set_params(transform="log").fit(tiny_pairs)
