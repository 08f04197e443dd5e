"""Optuna tuning of a recommender's hyper-parameters on inner splits of a training fold only."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

import numpy as np
import optuna
import pandas as pd

from recommender.errors import UserError
from recommender.models.factory import make_recommender, recommender_class
from recommender.models.selection import grouped_splits
from recommender.models.targets import check_target, mean_weighted_tau
from recommender.normalise import ranking_groups


def suggest_lr(trial: optuna.Trial) -> dict[str, object]:
    """LR search space: the ridge penalty."""
    return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}


def suggest_fm(trial: optuna.Trial) -> dict[str, object]:
    """FM search space: embedding size, learning rate, weight decay, epochs."""
    return {
        "k": trial.suggest_int("k", 2, 32, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-1, log=True),
        "epochs": trial.suggest_int("epochs", 20, 300, log=True),
    }


SEARCH_SPACES: dict[str, Callable[[optuna.Trial], dict[str, object]]] = {"lr": suggest_lr, "fm": suggest_fm}


inner_splits = grouped_splits  # validation splits grouped by dataset, or by model on a single dataset


def validation_tau(
    kind: str, params: dict[str, object], X: pd.DataFrame, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    """Mean weighted tau of a recommender on the validation parts of the inner splits: per split, the mean over its
    rankable groups (`mean_weighted_tau`, as evaluation counts them); -1 if none is rankable."""
    taus = []
    for train, val in splits:
        # params may hold `features` (a str); make_recommender checks every name
        est = make_recommender(kind, **params).fit(X.iloc[train], y[train])  # type: ignore[arg-type]
        taus.append(mean_weighted_tau(est.predict(X.iloc[val]), y[val], ranking_groups(X.iloc[val])))
    tau = float(np.nanmean(taus)) if np.isfinite(taus).any() else float("nan")
    return tau if np.isfinite(tau) else -1.0


def study_fingerprint(kind: str, X: pd.DataFrame, y: np.ndarray, fixed: dict[str, object], n_splits: int) -> str:
    """A short hash naming the tuning problem, so a stored study resumes only on the same data and settings."""
    digest = hashlib.sha256()
    digest.update(X[["model", "dataset"]].astype(str).to_csv(index=False).encode())
    digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    digest.update(json.dumps({"kind": kind, "n_splits": n_splits, **fixed}, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def concurrent_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``, safe when several processes open it at once: SQLite waits for the write lock
    (60 s) instead of failing with `database is locked`, and a race to create Optuna's tables (`table studies
    already exists`, a duplicate version row) is retried, as the other process has created them."""
    import sqlalchemy.exc

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.DBAPIError:
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)  # the last attempt's error is the caller's


def tune(
    kind: str,
    X: pd.DataFrame,
    y: object = None,
    n_trials: int = 20,
    seed: int = 0,
    storage: str | None = None,
    features: str = "d,m",
    n_splits: int = 3,
    study_name: str | None = None,
    verbose: bool = False,
    shared: bool = False,
    **fixed: object,
) -> dict[str, object]:
    """Best hyper-parameters of ``kind`` on training pairs X, as keyword arguments of ``make_recommender``.

    Validation is grouped by dataset inside X, so call it on a training fold only. With ``storage``
    (an SQLAlchemy URL such as the store's) the study is kept there and a rerun resumes it (up to ``n_trials``).
    With ``shared``, this process adds ``n_trials`` trials to the study, whatever it holds: several processes
    (machines) on one storage tune one study together, each with its own sampler seed drawn from ``seed`` and
    its process id (their trials interleave by timing, so a shared study is not reproducible trial by trial).
    """
    cls = recommender_class(kind)
    if int(n_trials) < 1:
        raise UserError(f"n_trials must be >= 1, got {n_trials}")
    if y is None:
        if "performance" not in X.columns:
            raise UserError("no target: pass y or a pair table with a 'performance' column")
        y = X["performance"]
    target = check_target(y, len(X))
    X = X.reset_index(drop=True)
    fixed = {"features": features, **fixed}
    if "seed" in cls().get_params():
        fixed.setdefault("seed", seed)
    splits = inner_splits(X, n_splits)
    fingerprint = study_fingerprint(kind, X, target, fixed, n_splits)
    name = study_name or f"recommender-{kind}-{fingerprint}"
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    sampler_seed = int(np.random.SeedSequence([seed, os.getpid()]).generate_state(1)[0]) if shared else seed
    study = optuna.create_study(
        study_name=name,
        storage=None if storage is None else concurrent_storage(storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        load_if_exists=True,
    )
    tuned_on = study.user_attrs.get("fingerprint")
    if tuned_on is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif tuned_on != fingerprint:
        raise UserError(f"study {name!r} tunes other pairs or settings (fingerprint {tuned_on}, here {fingerprint}): "
                        f"give another study name")
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    remaining = int(n_trials) if shared else int(n_trials) - done
    if remaining > 0:
        study.optimize(
            lambda trial: validation_tau(kind, {**fixed, **SEARCH_SPACES[kind](trial)}, X, target, splits),
            n_trials=remaining,
        )
    return {**fixed, **study.best_params}
