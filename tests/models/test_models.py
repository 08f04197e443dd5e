"""Learned recommenders on synthetic pair tables: closed forms, cold start, save/load, determinism, errors."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from scipy.stats import weightedtau
from sklearn.base import clone

from recommender.errors import UserError
from recommender.models import (
    FMRecommender,
    LinearRecommender,
    PairEncoder,
    load_recommender,
    make_recommender,
    mean_weighted_tau,
    normalise_target,
    parse_features,
    tune,
)
from recommender.models.fm import fm_scores
from recommender.models.fm_training import FactorizationMachine, SparseRows, pairwise_logistic_loss
from recommender.models.tuning import inner_splits, validation_tau


def explicit_fm(Z: np.ndarray, w0: float, w: np.ndarray, U: np.ndarray) -> np.ndarray:
    """The FM of SPEC §3 by its definition: the double sum over i < j, in float64."""
    inner = np.triu(U @ U.T, k=1)  # <u_i, u_j> for i < j only
    return w0 + Z @ w + np.einsum("ni,ij,nj->n", Z, inner, Z)


@pytest.fixture(scope="module")
def known_fm(synthetic_pairs) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Pairs, their performance from a known rank-3 FM on the 'd,m' encoding, and an 80/20 pair split."""
    pairs = synthetic_pairs()
    rng = np.random.default_rng(1)
    Z = PairEncoder("d,m").fit(pairs).transform(pairs)
    w = rng.normal(0, 0.3, Z.shape[1])
    U = rng.normal(0, 0.5, (Z.shape[1], 3))
    return pairs, explicit_fm(Z, 0.1, w, U), rng.random(len(pairs)) < 0.8


def test_fm_forward_matches_the_double_sum():
    """The O(k|z|) identity equals the O(k|z|^2) definition (float32 arithmetic: 1e-4 relative)."""
    torch.manual_seed(0)
    fm = FactorizationMachine(n_features=9, k=4, init_std=0.5)
    with torch.no_grad():
        fm.weights.normal_()
        fm.bias.fill_(0.3)
    Z = np.random.default_rng(0).normal(size=(20, 9))
    got = fm(SparseRows.of(Z.astype(np.float32))).detach().double().numpy()
    want = explicit_fm(Z, 0.3, fm.weights.detach().double().numpy(), fm.factors.detach().double().numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_sparse_rows_hold_every_nonzero_entry_once():
    """SparseRows.of pads each row's nonzero entries with (column 0, value 0), and lists them by column; scattering
    either back gives Z exactly, for rows of different lengths, an empty row and an all-zero matrix."""
    rng = np.random.default_rng(3)
    Z = np.where(rng.random((40, 25)) < 0.2, rng.normal(size=(40, 25)), 0.0).astype(np.float32)
    Z[5] = 0.0
    Z[7] = rng.normal(size=25)  # a dense row sets the width
    for matrix in (Z, np.zeros((3, 4), np.float32)):
        rows = SparseRows.of(matrix)
        back = np.zeros_like(matrix)
        np.add.at(back, (np.arange(len(matrix))[:, None], rows.columns.numpy()), rows.values.numpy())
        np.testing.assert_array_equal(back, matrix)
        by_column = np.zeros_like(matrix)
        column_of = np.repeat(np.arange(matrix.shape[1]), np.diff([*rows.starts.numpy(), len(rows.rows)]))
        by_column[rows.rows.numpy(), column_of] = rows.column_values.numpy()
        np.testing.assert_array_equal(by_column, matrix)
        X = torch.as_tensor(rng.normal(size=(len(matrix), 3)))
        np.testing.assert_allclose(rows.transposed_product(X).numpy(), matrix.T.astype(float) @ X.numpy(),
                                   rtol=1e-6, atol=1e-6)  # float32 values, float64 sums
        assert rows.columns.shape[1] == max(int((matrix != 0).sum(axis=1).max()), 1)


def test_fm_gradients_match_the_dense_definition():
    """The gathered forward's gradients (bias, weights, factors) equal autograd's through the dense O(k|z|^2)
    definition, in float64 (1e-10: the same sums in another order; Z holds float32 values, as SparseRows keeps)."""
    rng = np.random.default_rng(4)
    Z = np.where(rng.random((30, 12)) < 0.3, rng.normal(size=(30, 12)), 0.0).astype(np.float32).astype(float)
    fm = FactorizationMachine(n_features=12, k=3, init_std=0.5).double()
    with torch.no_grad():
        fm.weights.normal_()
        fm.bias.fill_(0.2)
    rows = SparseRows.of(Z)
    g = torch.as_tensor(rng.normal(size=30))
    (fm(rows) * g).sum().backward()
    sparse = [p.grad.clone() for p in (fm.bias, fm.weights, fm.factors)]
    bias, w, V = (p.detach().clone().requires_grad_() for p in (fm.bias, fm.weights, fm.factors))
    z = torch.as_tensor(Z)
    pair = (((z[:, :, None] * z[:, None, :]) * (V @ V.T)).sum(dim=(1, 2)) - ((z * z) @ (V * V).sum(dim=1))) / 2
    ((bias + z @ w + pair) * g).sum().backward()
    for got, want in zip(sparse, (bias.grad, w.grad, V.grad), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


def test_fm_closed_form_prediction_matches_the_double_sum_and_the_torch_module():
    """The numpy prediction of a saved FM (float64 from float32 weights) equals the O(k|z|^2) definition to float64
    rounding (1e-10: sums of ~10 terms of size ~10), and the torch module it was trained as to float32's (1e-4)."""
    torch.manual_seed(1)
    fm = FactorizationMachine(n_features=9, k=4, init_std=0.5)
    with torch.no_grad():
        fm.weights.normal_()
        fm.bias.fill_(-0.2)
    arrays = {name: value.detach().numpy() for name, value in fm.state_dict().items()}
    Z = np.random.default_rng(1).normal(size=(30, 9))
    got = fm_scores(Z, **arrays)
    want = explicit_fm(Z, float(arrays["bias"]), arrays["weights"].astype(float), arrays["factors"].astype(float))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    torch_scores = fm(SparseRows.of(Z.astype(np.float32))).detach().double().numpy()
    np.testing.assert_allclose(got, torch_scores, rtol=1e-4, atol=1e-4)


def test_pairwise_loss_by_hand():
    """Two datasets: ordered pairs are (0>1) in the first and (3>2) in the second; ties give no pair."""
    scores = torch.tensor([2.0, 1.0, 0.0, 0.5, 7.0])
    target = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    offsets = torch.tensor([0, 2, 5])
    # dataset 2 rows (0.0, 0.5, 7.0) with targets (0, 1, 1): pairs (1>0) and (2>0)
    want = (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(-0.5)) + np.log1p(np.exp(-7.0))) / 3
    assert float(pairwise_logistic_loss(scores, target, offsets)) == pytest.approx(want, rel=1e-6)


def test_parse_features():
    """Aliases expand to id and side blocks; other tokens name score columns."""
    assert parse_features("d,m,logme") == (("d_id", "d_side", "m_id", "m_side"), ("score_logme",))
    assert parse_features("m_side, score_parc") == (("m_side",), ("score_parc",))
    with pytest.raises(UserError, match="empty feature set"):
        parse_features(" , ")


def test_encoder_blocks_by_independent_computation(synthetic_pairs):
    """One-hot ids, standardised scalars (sizes log1p first) with a missing indicator, zero ids for unseen values."""
    pairs = synthetic_pairs(n_models=6, n_datasets=3)
    enc = PairEncoder("m").fit(pairs)
    Z = pd.DataFrame(enc.transform(pairs), columns=enc.get_feature_names_out())
    ids = Z[[f"onehot__model_m{i}" for i in range(6)]].to_numpy()
    np.testing.assert_array_equal(ids, (pairs["model"].to_numpy()[:, None] == [f"m{i}" for i in range(6)]))
    logged = np.log1p(pairs["params_m"].to_numpy())
    np.testing.assert_allclose(Z["scalar__value__params_m"], (logged - logged.mean()) / logged.std(), atol=1e-12)
    top1 = pairs["imagenet_top1"].to_numpy(dtype=float)  # linear, not logged (SPEC §3)
    known = ~np.isnan(top1)
    np.testing.assert_allclose(Z.loc[known, "scalar__value__imagenet_top1"],
                               (top1[known] - top1[known].mean()) / top1[known].std(), atol=1e-12)
    gmacs_missing = pairs["gmacs"].isna().to_numpy()
    np.testing.assert_array_equal(Z["scalar__missing__missingindicator_gmacs"], gmacs_missing)
    np.testing.assert_allclose(Z.loc[gmacs_missing, "scalar__value__gmacs"], 0, atol=1e-12)  # the training mean
    unseen = pairs.head(1).assign(model="never-seen", family="never-seen-family")
    row = pd.Series(enc.transform(unseen)[0], index=Z.columns)
    assert (row[[c for c in Z.columns if c.startswith(("onehot__model_", "onehot__family_"))]] == 0).all()


def test_scores_are_z_scored_within_each_dataset(synthetic_pairs):
    """Per dataset the score feature has mean 0 and std 1, and a per-dataset shift and scale changes nothing."""
    pairs = synthetic_pairs(n_models=10, n_datasets=4)
    enc = PairEncoder("logme").fit(pairs)
    z = enc.transform(pairs)[:, 0]
    stats = pd.Series(z).groupby(pairs["dataset"].to_numpy()).agg(["mean", "std"])
    np.testing.assert_allclose(stats["mean"], 0, atol=1e-12)
    np.testing.assert_allclose(stats["std"], np.sqrt(10 / 9), rtol=1e-12)  # population z-score, sample std
    moved = pairs.assign(score_logme=pairs["score_logme"] * 5 + pairs["dataset"].str[1:].astype(float))
    np.testing.assert_allclose(enc.transform(moved)[:, 0], z, atol=1e-12)


def test_target_normalised_within_dataset():
    """Z-scored per dataset; a dataset where all models tie gets target 0."""
    y = np.array([1.0, 2.0, 3.0, 5.0, 5.0])
    t = normalise_target(y, pd.Series(["a", "a", "a", "b", "b"]))
    np.testing.assert_allclose(t, [-np.sqrt(1.5), 0, np.sqrt(1.5), 0, 0], atol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "pairwise"])
def test_fm_recovers_a_known_fm_ranking(known_fm, loss):
    """Held-out pairs of a known FM are ranked with weighted tau > 0.9 (SPEC §3 closed-form check).

    LR cannot express the model-dataset interactions, so it must rank them clearly worse on the same data.
    """
    pairs, y, train = known_fm
    params = dict(k=8, epochs=300, learning_rate=0.05, weight_decay=1e-5, target="raw", loss=loss)
    fm = FMRecommender(**params).fit(pairs[train], y[train])
    tau_fm = mean_weighted_tau(fm.predict(pairs[~train]), y[~train], pairs["dataset"][~train])
    lr = LinearRecommender(alpha=1e-3, target="raw", interactions=False).fit(pairs[train], y[train])
    tau_lr = mean_weighted_tau(lr.predict(pairs[~train]), y[~train], pairs["dataset"][~train])
    assert tau_fm > 0.9
    assert tau_lr < tau_fm - 0.2


def test_lr_recovers_known_linear_weights(synthetic_pairs):
    """Noise-free y = w0 + Z w on the side features: ridge with a tiny penalty returns w.

    Tolerance 1e-6: the ridge bias is about alpha / s_min^2 ~ 1e-7 (smallest non-zero singular value 2.8).

    Each one-hot block sums to 1 like the intercept, so its weights are identified up to a constant:
    the known weights are drawn centred within each block, which is the minimum-norm solution ridge finds.
    """
    pairs = synthetic_pairs()
    enc = PairEncoder("d_side,m_side").fit(pairs)
    Z = enc.transform(pairs)
    names = pd.Series(enc.get_feature_names_out())
    w = pd.Series(np.random.default_rng(2).normal(size=Z.shape[1]))
    for column in ("group", "modality", "family", "pretrain_dataset"):
        block = names.str.startswith(f"onehot__{column}_")
        w[block] -= w[block].mean()
    lr = LinearRecommender(features="d_side,m_side", alpha=1e-6, target="raw", interactions=False)
    lr.fit(pairs, 0.7 + Z @ w.to_numpy())
    np.testing.assert_allclose(lr.coef_.to_numpy(), w, atol=1e-6)
    assert lr.intercept_ == pytest.approx(0.7, abs=1e-6)
    assert list(lr.coef_.index) == list(names)


def test_encoder_sources_name_each_encoded_column(synthetic_pairs):
    """Every encoded column maps back to its pair-table column (one-hot levels and indicators included)."""
    pairs = synthetic_pairs(n_models=6, n_datasets=3)
    enc = PairEncoder("d,m,logme").fit(pairs.assign(score_logme=pairs["score_logme"].mask(pairs.index == 0)))
    names, sources = enc.get_feature_names_out(), enc.sources()
    assert len(sources) == len(names)
    assert all(source in name for name, source in zip(names, sources, strict=True))


def test_lr_interactions_let_a_new_dataset_reorder_the_models(synthetic_pairs):
    """Performance = model skill x dataset size: with model x dataset-side products LR ranks an unseen small
    and an unseen large dataset oppositely; without them both get the same ranking (the id blocks are zero)."""
    pairs = synthetic_pairs(n_models=20, n_datasets=10, seed=3)
    skill = pairs["model"].str[1:].astype(float) - 10
    y = skill * np.log(pairs["examples"] / 5000)
    small = pairs[pairs["dataset"] == "d0"].assign(dataset="new-small", examples=800.0)
    large = small.assign(dataset="new-large", examples=50000.0)
    with_x = LinearRecommender().fit(pairs, y)
    assert weightedtau(with_x.predict(small), -skill[small.index]).statistic > 0.8
    assert weightedtau(with_x.predict(large), skill[large.index]).statistic > 0.8
    plain = LinearRecommender(interactions=False).fit(pairs, y)
    np.testing.assert_allclose(plain.predict(small) - plain.predict(small).mean(),
                               plain.predict(large) - plain.predict(large).mean(), atol=1e-9)


@pytest.mark.parametrize("kind", ["lr", "fm"])
def test_unseen_model_gets_a_finite_prediction_from_its_side_features(known_fm, kind):
    """Cold start: a never-seen model id predicts finitely, and its side features move the prediction."""
    pairs, y, _ = known_fm
    est = make_recommender(kind, epochs=50) if kind == "fm" else make_recommender(kind)
    est.fit(pairs, y)
    new = pairs[pairs["dataset"] == "d0"].head(1).assign(model="brand-new/model")
    bigger = new.assign(params_m=new["params_m"] * 50, family="swin")
    pred = est.predict(pd.concat([new, bigger]))
    assert np.isfinite(pred).all()
    assert abs(pred[0] - pred[1]) > 1e-3


@pytest.mark.parametrize("kind", ["lr", "fm"])
def test_save_load_round_trip_is_exact(known_fm, tmp_path, kind):
    """Loaded recommenders give bit-identical predictions and the same hyper-parameters."""
    pairs, y, train = known_fm
    est = make_recommender(kind, features="d,m,logme", **({"epochs": 30} if kind == "fm" else {}))
    est.fit(pairs[train], y[train])
    est.save(tmp_path / "model")
    back = load_recommender(tmp_path / "model")
    assert type(back) is type(est) and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(pairs[~train]), est.predict(pairs[~train]))
    with pytest.raises(UserError, match="holds a"):
        (LinearRecommender if kind == "fm" else FMRecommender).load(tmp_path / "model")


def test_fm_is_seeded_and_deterministic(known_fm):
    """Same seed, same predictions bit for bit; another seed, other initial factors and predictions."""
    pairs, y, _ = known_fm
    runs = [FMRecommender(epochs=20, seed=s, batch_datasets=5).fit(pairs, y).predict(pairs) for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_fm_training_is_quiet_by_default(known_fm, capfd):
    """No banner, progress line or warning reaches the terminal unless verbose."""
    pairs, y, _ = known_fm
    FMRecommender(epochs=5).fit(pairs, y)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_sklearn_habits():
    """clone/get_params/set_params work and the constructor stores hyper-parameters untouched."""
    fm = make_recommender("fm", features="d,m,logme", k=4)
    assert clone(fm).get_params() == fm.get_params()
    assert fm.set_params(k=16).k == 16 and fm.features == "d,m,logme"


def test_bad_input_gives_one_line_errors(known_fm):
    """NaN targets, infinite or negative scalars, missing columns and unknown names are named in the error."""
    pairs, y, _ = known_fm
    with pytest.raises(UserError, match="NaN or infinite"):
        LinearRecommender().fit(pairs, np.where(np.arange(len(y)) == 0, np.nan, y))
    with pytest.raises(UserError, match="params_m"):
        LinearRecommender().fit(pairs.assign(params_m=np.inf), y)
    with pytest.raises(UserError, match="classes"):
        LinearRecommender().fit(pairs.assign(classes=-1.0), y)
    with pytest.raises(UserError, match="score_parc"):
        LinearRecommender(features="d,m,parc").fit(pairs, y)
    with pytest.raises(UserError, match="unknown recommender"):
        make_recommender("svm")
    with pytest.raises(UserError, match="no hyper-parameter"):
        make_recommender("lr", k=3)
    with pytest.raises(UserError, match="FMRecommender: loss=.* must be one of mse, pairwise"):
        FMRecommender(loss="hinge").fit(pairs, y)
    with pytest.raises(UserError, match="no target"):
        LinearRecommender().fit(pairs)


def test_fit_reads_performance_column(known_fm):
    """fit(pair_table) uses its performance column, the same as passing y."""
    pairs, y, _ = known_fm
    a = LinearRecommender().fit(pairs.assign(performance=y)).predict(pairs)
    np.testing.assert_array_equal(a, LinearRecommender().fit(pairs, y).predict(pairs))


def in_search_space(kind: str, params: dict[str, object]) -> bool:
    """Whether the tuned hyper-parameters lie in the ranges SPEC §3 gives ``tune`` (integers where integer)."""
    if kind == "lr":
        return 1e-3 <= params["alpha"] <= 1e3
    return (isinstance(params["k"], int) and 2 <= params["k"] <= 32 and isinstance(params["epochs"], int)
            and 20 <= params["epochs"] <= 300 and 1e-3 <= params["learning_rate"] <= 0.2
            and 1e-7 <= params["weight_decay"] <= 1e-1)


@pytest.mark.slow
def test_tune_returns_usable_params_and_resumes(known_fm, tmp_path):
    """Best params build a recommender; a rerun on the same SQL storage adds only the missing trials and
    returns the best of all stored trials."""
    pairs, y, train = known_fm
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = tune("lr", pairs[train], y[train], n_trials=4, seed=0, storage=url, target="raw")
    assert 1e-3 <= params["alpha"] <= 1e3 and params["target"] == "raw"
    make_recommender("lr", **params).fit(pairs[train], y[train])
    again = tune("lr", pairs[train], y[train], n_trials=6, seed=0, storage=url, target="raw")
    assert set(again) == set(params) == {"alpha", "features", "target"} and in_search_space("lr", again)
    (summary,) = optuna.get_all_study_summaries(storage=url)
    assert summary.n_trials == 6
    study = optuna.load_study(study_name=summary.study_name, storage=url)
    values = [t.value for t in study.trials]
    assert again["alpha"] == study.trials[int(np.argmax(values))].params["alpha"]
    fm_params = tune("fm", pairs[train], y[train], n_trials=2, seed=0, target="raw")
    assert {"k", "learning_rate", "weight_decay", "epochs"} <= set(fm_params) and in_search_space("fm", fm_params)


def test_tune_finds_the_clearly_right_penalty(synthetic_pairs):
    """Performance = model skill x log dataset size, noise-free: only the model x size products rank an unseen
    dataset, and ridge's default alpha 10 shrinks them on 72 pairs (inner-fold tau 0.55 here), while any
    alpha <= 0.1 ranks almost perfectly (>= 0.98). Eight seeded trials find that region, and the tuned
    recommender's inner-fold score beats the default's on the very same folds."""
    pairs = synthetic_pairs(n_models=12, n_datasets=6, seed=3)
    y = ((pairs["model"].str[1:].astype(float) - 6) * np.log(pairs["examples"] / 5000)).to_numpy()
    params = tune("lr", pairs, y, n_trials=8, seed=0, target="raw")
    assert in_search_space("lr", params) and params["alpha"] < 1
    splits = inner_splits(pairs)
    tuned = validation_tau("lr", params, pairs, y, splits)
    default = validation_tau("lr", {"features": "d,m", "target": "raw"}, pairs, y, splits)
    assert tuned >= 0.95 and tuned > default + 0.3, (tuned, default)


def test_tune_on_one_dataset_splits_by_model(known_fm, tmp_path):
    """The unseen-model split (one dataset) validates on held-out models instead of datasets: three folds whose
    validation parts are whole models, pairwise disjoint and together every row; each fold's train is the rest."""
    pairs, y, _ = known_fm
    one = (pairs["dataset"] == "d0").to_numpy()
    X = pairs[one].reset_index(drop=True)
    splits = inner_splits(X)
    assert len(splits) == 3
    seen = np.zeros(len(X), dtype=int)
    for train, val in splits:
        assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(X)))  # disjoint and covering
        assert not set(X["model"].iloc[train]) & set(X["model"].iloc[val])
        seen[val] += 1
    assert (seen == 1).all()  # every row validated exactly once
    assert sorted(len(val) for _, val in splits) == [13, 13, 14]  # 40 models, one pair each, balanced
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = tune("lr", pairs[one], y[one], n_trials=2, features="m", storage=url)
    assert "alpha" in params and in_search_space("lr", params)
    # the stored best value is the tuned LR's mean weighted tau over exactly these model-grouped folds
    (summary,) = optuna.get_all_study_summaries(storage=url)
    best = optuna.load_study(study_name=summary.study_name, storage=url).best_value
    assert best == pytest.approx(validation_tau("lr", params, X, y[one], splits), abs=1e-12)


def test_inner_splits_by_dataset_hold_out_whole_datasets(synthetic_pairs):
    """With two or more datasets each validation part is whole datasets (12 split 4/4/4), disjoint and covering."""
    X = synthetic_pairs(n_models=5, n_datasets=12)
    splits = inner_splits(X)
    val_sets = [set(X["dataset"].iloc[val]) for _, val in splits]
    assert sorted(map(len, val_sets)) == [4, 4, 4] and set().union(*val_sets) == set(X["dataset"])
    for (train, val), held in zip(splits, val_sets, strict=True):
        assert not set(X["dataset"].iloc[train]) & held and len(train) + len(val) == len(X)


def test_mean_weighted_tau_counts_only_rankable_datasets(brute_weighted_tau):
    """As the evaluation does: a dataset with 2 models or constant performance is left out, not averaged in.
    The expected tau is computed pair by pair (1e-12: two float64 sums of the same nine terms)."""
    datasets = pd.Series(["a"] * 4 + ["b"] * 2 + ["c"] * 3)
    pred = np.array([0.1, 0.4, 0.2, 0.3, 1.0, 2.0, 1.0, 2.0, 3.0])
    y = np.array([1.0, 4.0, 3.0, 2.0, 2.0, 1.0, 5.0, 5.0, 5.0])
    expected = brute_weighted_tau(pred[:4], y[:4])
    assert mean_weighted_tau(pred, y, datasets) == pytest.approx(expected, rel=1e-12)
    # two rankable datasets are averaged with equal weight, whatever their sizes
    two = pd.Series(["a"] * 4 + ["b"] * 3)
    pred2, y2 = np.array([0.1, 0.4, 0.2, 0.3, 3.0, 1.0, 2.0]), np.array([1.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0])
    want = (expected + brute_weighted_tau(pred2[4:], y2[4:])) / 2
    assert mean_weighted_tau(pred2, y2, two) == pytest.approx(want, rel=1e-12)
