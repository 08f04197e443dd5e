"""`WarmStartLR`: the static LR prediction updated in closed form with the target's observed pairs: a Bayesian
ridge of the observed (standardised) results on [LR prediction, the model's latent factors of the training
z-matrix], with the prior "the LR is right" (weight 1 on the LR column, 0 elsewhere). Before two results are seen it
ranks exactly as the LR. The spread is the posterior std. With `explore` > 0 it ranks by an upper confidence bound:
score + explore * spread. `warm_update` is the same update for `recommend --observed`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from recommender.contracts import ADAPTIVE_BUDGETS
from recommender.models.params import BUDGETS, FOLDS, TEXT, Rule
from recommender.models.params import number as in_range  # `number` is a loop variable below
from recommender.models.session import TOP_REASONS, AdaptiveRecommender, Ranking, Session, standardise, zscore_matrix


class _WarmSession(Session):
    def __init__(self, Phi: np.ndarray, models: np.ndarray, lam: float, explore: float):
        self.Phi, self.models, self.lam, self.explore = Phi, models, lam, explore
        self.prior = np.eye(Phi.shape[1])[0]  # weight 1 on the LR column: the static LR ranking

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        picked, t = list(picked), np.asarray(values, dtype=float)
        P = self.Phi
        if len(picked) >= 2 and np.ptp(t) > 0:
            Po = P[picked] - P[picked].mean(0)  # centred: the target's unknown offset is no evidence
            to = standardise(t)  # the target's scale is unknown: its results in their own std units
        else:
            Po, to = np.zeros((0, P.shape[1])), np.zeros(0)
        A = np.linalg.inv(Po.T @ Po + self.lam * np.eye(P.shape[1]))
        theta = A @ (Po.T @ to + self.lam * self.prior)
        mean = P @ theta
        spread = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", P, A, P), 0.0))
        reasons = None
        if explain:
            # the posterior mean is linear in the observed results: each one's share of a candidate's score
            share = (P @ A @ Po.T) * to if len(to) else np.zeros((len(P), 0))
            reasons = []
            for row in share:
                top = np.argsort(-np.abs(row))[:TOP_REASONS]
                reasons.append("LR prediction" + (" moved by " + ", ".join(
                    f"{self.models[picked[j]]} ({row[j]:+.2f})" for j in top) if len(to) else
                    " (fewer than 2 results observed)"))
        return Ranking(mean + self.explore * spread, spread, reasons)


class WarmStartLR(AdaptiveRecommender):
    """The LR recommender warm-started on the target: a closed-form Bayesian update with its observed pairs."""

    GRID = {"lam": (1.0, 4.0, 16.0), "factors": (2, 4, 8), "explore": (0.25, 0.5, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"lam": in_range(0, low_open=True).or_none(),
                                             "factors": in_range(0, integer=True).or_none(),
                                             "explore": in_range(0).or_none(), "features": TEXT, "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, lam: float | None = None, factors: int | None = None, explore: float | None = 0.0,
                 features: str = "d,m", budgets: tuple[int, ...] = ADAPTIVE_BUDGETS, max_inner_folds: int = 8):
        self.lam = lam
        self.factors = factors
        self.explore = explore
        self.features = features
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def _prepare(self, train: pd.DataFrame) -> tuple:
        from recommender.models.factory import make_recommender

        return make_recommender("lr", features=self.features).fit(train), model_factors(train)

    def _view(self, prepared: tuple, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        lr, factors = prepared
        return lr.predict(candidates), candidates["model"].to_numpy(), factors

    def _open(self, view: tuple[np.ndarray, np.ndarray, pd.DataFrame], params: dict) -> Session:
        return warm_session(*view, params)


# the LR warm start of `recommend`: chosen on inner leave-one-dataset-out folds of SHiFT vision (WarmStartLR.fit)
WARM_START = {"lam": 1.0, "factors": 8, "explore": 0.0}


def model_factors(train: pd.DataFrame) -> pd.DataFrame:
    """Latent model factors (models x components, largest first) of the training z-matrix, missing pairs at 0
    (the dataset mean)."""
    Z = zscore_matrix(train)
    if Z.empty:  # no other dataset: no factors, the warm start moves the prediction's scale only
        return pd.DataFrame(index=Z.index)
    U, s, _ = np.linalg.svd(Z.fillna(0.0).to_numpy(), full_matrices=False)
    return pd.DataFrame(U * s, index=Z.index)


def warm_session(prediction: np.ndarray, models: np.ndarray, factors: pd.DataFrame, params: dict) -> _WarmSession:
    """A warm-start session over candidates `models` with the static `prediction`: features [prediction, the
    first params["factors"] model factors], each standardised; params also give "lam" and "explore"."""
    k = min(int(params["factors"]), factors.shape[1])
    F = factors.reindex(models).iloc[:, :k].fillna(0.0).to_numpy()
    Phi = np.column_stack([standardise(np.asarray(prediction, dtype=float))] + [standardise(f) for f in F.T])
    return _WarmSession(Phi, np.asarray(models), params["lam"], params.get("explore", 0.0))


def warm_update(prediction: np.ndarray, models: np.ndarray, observed: pd.Series, factors: pd.DataFrame,
                params: dict) -> tuple[np.ndarray, np.ndarray]:
    """A static prediction of the candidates `models` updated with the observed results (performance by model) as
    `WarmStartLR` does, and its posterior std, both in the prediction's own units (the warm start's standardised
    score read back with the prediction's mean and std). With fewer than two observed results, or none with
    spread, the prediction comes back unchanged (the warm start's prior is "the static model is right")."""
    prediction = np.asarray(prediction, dtype=float)
    observed = observed[observed.index.isin(models)]  # a result of a model outside the candidates moves nothing
    at = pd.Index(models).get_indexer(observed.index)
    ranking = warm_session(prediction, models, factors, params).rank(list(at), observed.to_numpy(dtype=float))
    centre, scale = prediction.mean(), prediction.std() or 1.0
    informed = len(observed) >= 2 and np.ptp(observed.to_numpy(dtype=float)) > 0
    return (centre + scale * ranking.score if informed else prediction), scale * ranking.spread
