"""LogME's fixed point on torch (torch_batch.fit_evidence_torch, torch_scores.logme_torch) against
recommender.scores.logme: one implementation (scores/evidence.py), run on numpy and on torch.

Tolerances, and why:
- Same spectrum and projections in (numpy's), batched on torch: the fixed point does numpy's arithmetic step for
  step (only the order of the sums over the spectrum differs), so each model stops at the same step and a, b and
  the evidence agree to RTOL_SAME = 1e-9; the observed differences are ~1e-15.
- End to end (Gram, eigh and projections on torch too): the inputs of the fixed point differ by round-off, so
  a model may stop one step earlier or later. The iteration stops once a / b changes by less than
  TOLERANCE = 1e-10 relative, so a / b, a and b agree to about that (RTOL_PRECISIONS = 1e-8 leaves room for a
  slowly converging fixed point), while the evidence is stationary in a / b at its maximum and agrees to round-off:
  RTOL = 1e-9, the torch tests' tolerance (observed ~1e-15). A wrong term changes the 3rd digit or more.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recommender.errors import UserError  # noqa: E402
from recommender.scores.inputs import one_hot  # noqa: E402
from recommender.scores.logme import _projections, fit_evidence, logme  # noqa: E402
from recommender.scores.spectrum import FeatureMatrix  # noqa: E402
from recommender.scores.torch_batch import fit_evidence_torch, score_matrices  # noqa: E402
from recommender.scores.torch_scores import logme_torch  # noqa: E402

RTOL = 1e-9
RTOL_SAME = 1e-9
RTOL_PRECISIONS = 1e-8
LOGME_MODULE = sys.modules["recommender.scores.logme"]  # the package's `logme` attribute is the function
REFERENCE = Path(__file__).parents[1] / "data" / "reference"


def clusters(n: int, dim: int, classes: int, spread: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters with an offset, labels covering every class."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % classes)
    return rng.normal(size=(classes, dim))[y] * spread + rng.normal(size=(n, dim)) + 2.0, y


def torch_fit(matrices: list[FeatureMatrix], Y: np.ndarray):
    """fit_evidence_torch on numpy's own spectra and projections, stacked into one batch."""
    inputs = [(fm.spectrum[0], *_projections(fm, Y, None)) for fm in matrices]
    s, z2, outside = (torch.from_numpy(np.stack(parts)) for parts in zip(*inputs, strict=True))
    scale = torch.tensor([fm.scale for fm in matrices], dtype=torch.float64)
    return fit_evidence_torch(s, z2, outside, matrices[0].n, scale)


@pytest.mark.parametrize("n,dim,classes", [(200, 16, 5), (40, 64, 10), (30, 50, 2), (100, 100, 3)])
def test_fixed_point_does_numpys_steps(n, dim, classes):
    """Three models in one batch, each with numpy's inputs: the same steps, a, b and evidence per model."""
    matrices = [FeatureMatrix(clusters(n, dim, classes, spread, seed=1)[0]) for spread in (0.1, 0.5, 2.0)]
    y = clusters(n, dim, classes, seed=1)[1]
    Y = one_hot(y, classes)
    fit, rank, unbounded = torch_fit(matrices, Y)
    for i, fm in enumerate(matrices):
        expected = fit_evidence(fm, Y)
        assert int(fit.iterations[i]) == expected.iterations
        np.testing.assert_allclose(fit.evidence[i].numpy(), expected.evidence, rtol=RTOL_SAME)
        np.testing.assert_allclose(fit.alpha[i].numpy(), expected.alpha, rtol=RTOL_SAME)
        np.testing.assert_allclose(fit.beta[i].numpy(), expected.beta, rtol=RTOL_SAME)
        assert int(rank[i]) == np.count_nonzero(fm.spectrum[0]) and not bool(unbounded[i])


def test_fixed_point_takes_the_limits_as_numpy(clusters):
    """A column without linear signal (a / b -> inf) and n < D interpolation (a / b -> 0), batched with a normal
    model: the limit values and the inf precisions as numpy's."""
    rng = np.random.default_rng(3)
    n, dim = 60, 6
    F = rng.normal(size=(n, dim))
    signal = F @ rng.normal(size=dim) + rng.normal(scale=0.3, size=n)
    noise = rng.normal(size=n)
    noise -= F @ np.linalg.lstsq(F, noise, rcond=None)[0]  # orthogonal to every feature: m = 0 is the maximum
    Y = np.column_stack([signal, noise])
    matrices = [FeatureMatrix(F), FeatureMatrix(rng.normal(size=(n, dim)))]
    fit, _, _ = torch_fit(matrices, Y)
    for i, fm in enumerate(matrices):
        expected = fit_evidence(fm, Y)
        np.testing.assert_allclose(fit.evidence[i].numpy(), expected.evidence, rtol=RTOL_SAME)
        np.testing.assert_allclose(fit.beta[i].numpy(), expected.beta, rtol=RTOL_SAME)
        np.testing.assert_allclose(fit.alpha[i].numpy(), expected.alpha, rtol=RTOL_SAME)
    assert np.isinf(fit.alpha[0, 1].item())  # the noise column sits at the a -> inf limit
    F, y = clusters(27, 60, 200, 5)  # n < D with F F' invertible: the noise-free limit b -> inf wins
    wide, Y = FeatureMatrix(F), one_hot(y, 5)
    fit, _, _ = torch_fit([wide], Y)
    expected = fit_evidence(wide, Y)
    assert np.isinf(expected.beta).all() and np.isinf(fit.beta[0].numpy()).all()
    np.testing.assert_allclose(fit.evidence[0].numpy(), expected.evidence, rtol=RTOL_SAME)
    np.testing.assert_allclose(fit.alpha[0].numpy(), expected.alpha, rtol=RTOL_SAME)


CASES = {  # name: (features, labels or targets, task)
    "n>D": (*clusters(200, 16, 5), "classification"),
    "n<D": (*clusters(40, 64, 10), "classification"),
    "binary n<D": (*clusters(30, 50, 2), "classification"),
    "float32": (clusters(150, 20, 10)[0].astype(np.float32), clusters(150, 20, 10)[1], "classification"),
    "scale 1e200": (clusters(120, 12, 3)[0] * 1e200, clusters(120, 12, 3)[1], "classification"),
    "scale 1e-200": (clusters(120, 12, 3)[0] * 1e-200, clusters(120, 12, 3)[1], "classification"),
    "constant features": (np.full((50, 4), 3.0), np.arange(50) % 2, "classification"),
    "one target column": (clusters(80, 10, 2)[0], clusters(80, 10, 2)[0] @ np.arange(10.0) + np.sin(np.arange(80)),
                          "regression"),
    "rank deficient": (clusters(100, 8, 4)[0] @ np.ones((8, 16)), clusters(100, 8, 4)[1], "classification"),
}


@pytest.mark.parametrize("name", CASES)
def test_logme_torch_equals_numpy(name):
    F, y, task = CASES[name]
    assert logme_torch(F, y, device="cpu", task=task) == pytest.approx(logme(F, y, task), rel=RTOL)


def test_scale_free_like_numpy():
    """F x 1e200 is F times a power of two after FeatureMatrix's rescaling: the same value, not inf or NaN."""
    F, y = clusters(120, 12, 3)
    assert logme_torch(F * 1e200, y, device="cpu") == pytest.approx(logme_torch(F, y, device="cpu"), rel=1e-12)


def test_precisions_end_to_end_within_the_stopping_tolerance():
    """Gram, eigh and projections on torch too: a and b within what the relative stopping rule allows."""
    for F, y, _ in (CASES["n>D"], CASES["n<D"]):
        fm = FeatureMatrix(F)
        Y = one_hot(y, y.max() + 1)
        expected = fit_evidence(fm, Y)
        z = torch.from_numpy(F.astype(np.float64) * fm.scale)
        gram = z @ z.T if fm.wide else z.T @ z
        values, vectors = torch.linalg.eigh(gram)
        values = torch.where(values > values[-1] * max(F.shape) * np.finfo(float).eps, values, 0.0)
        w = vectors.T @ torch.from_numpy(Y) if fm.wide else vectors.T @ (z.T @ torch.from_numpy(Y))
        z2 = w * w if fm.wide else torch.where(values[:, None] > 0, w**2 / values.clamp(min=1e-300)[:, None], 0.0)
        outside = torch.zeros(Y.shape[1]) if fm.wide else (torch.from_numpy(Y) ** 2).sum(0) - z2.sum(0)
        fit, _, _ = fit_evidence_torch(values[None], z2[None], outside[None].clamp(min=0.0), fm.n,
                                       torch.tensor([fm.scale], dtype=torch.float64))
        np.testing.assert_allclose(fit.alpha[0].numpy(), expected.alpha, rtol=RTOL_PRECISIONS)
        np.testing.assert_allclose(fit.beta[0].numpy(), expected.beta, rtol=RTOL_PRECISIONS)
        np.testing.assert_allclose(fit.evidence[0].numpy(), expected.evidence, rtol=RTOL)


def test_authors_reference_values():
    """The converged maxima of the authors' code (tests/data/reference, as test_scores_reference), at its 1e-6."""
    vectors = json.loads((REFERENCE / "reference_vectors.json").read_text())["vectors"]
    inputs = np.load(REFERENCE / "reference_inputs.npz")
    checked = 0
    for ref in vectors:
        if ref["metric"] != "logme_converged" or ref["status"] != "ok":
            continue
        F, y = inputs[f"{ref['case']}__f"], inputs[f"{ref['case']}__y"]
        task = "regression" if ref["case"].startswith("reg") else "classification"
        ours = logme_torch(F, y, device="cpu", task=task)
        assert ours == pytest.approx(ref["value"], rel=1e-6)
        assert ours == pytest.approx(logme(F, y, task), rel=RTOL)
        checked += 1
    assert checked >= 4


def test_zoo_batch_mixes_widths_and_matches_single_models():
    """Wide models of different D share n x n Grams: one batch; each value equals numpy's and the single call."""
    y = clusters(40, 8, 4)[1]
    features = [clusters(40, dim, 4, spread, seed=dim)[0] for dim, spread in ((60, 0.3), (90, 1.0), (60, 2.0))]
    features.append(clusters(40, 8, 4, seed=9)[0])  # a tall model: a batch of its own
    outcomes = score_matrices([FeatureMatrix(F) for F in features], y, ["logme"], device="cpu")
    for F, out in zip(features, outcomes, strict=True):
        assert out.values["logme"] == pytest.approx(logme(F, y), rel=RTOL)
        assert out.values["logme"] == pytest.approx(logme_torch(F, y, device="cpu"), rel=1e-12)
        assert out.seconds["logme"] >= 0


@pytest.mark.parametrize("features,labels", [
    (np.zeros((30, 5)), np.arange(30) % 2),                        # all zero
    (clusters(30, 5, 2)[0] * np.array([1e12, 1, 1, 1, 1]), np.arange(30) % 2),  # unbalanced columns
    (np.hstack([clusters(60, 5, 3)[0], one_hot(clusters(60, 5, 3)[1], 3)]), clusters(60, 5, 3)[1]),  # leaked
    (clusters(30, 5, 2)[0], np.zeros(30)),                         # one class
])
def test_same_errors_as_numpy(features, labels):
    with pytest.raises(UserError) as expected:
        logme(features, labels)
    with pytest.raises(UserError, match="^" + re.escape(str(expected.value)) + "$"):
        logme_torch(features, labels, device="cpu")


def test_an_error_stays_with_its_model():
    """In one batch, the all-zero model gets numpy's error and the others their values."""
    F, y = clusters(50, 6, 2)
    outcomes = score_matrices([FeatureMatrix(F), FeatureMatrix(np.zeros_like(F)), FeatureMatrix(F * 3)], y,
                              ["logme", "lfc"], device="cpu")
    assert str(outcomes[1].values["logme"]) == "features are all zero: LogME is undefined"
    assert isinstance(outcomes[1].values["lfc"], UserError)
    assert outcomes[0].values["logme"] == pytest.approx(logme(F, y), rel=RTOL)
    assert outcomes[2].values["logme"] == pytest.approx(logme(F, y), rel=RTOL)  # LogME is scale-free


def test_never_runs_numpys_fixed_point(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("numpy fit_evidence called")

    monkeypatch.setattr(LOGME_MODULE, "fit_evidence", refuse)
    F, y, _ = CASES["n<D"]
    assert np.isfinite(logme_torch(F, y, device="cpu"))


def test_no_convergence_warns_as_numpy(monkeypatch):
    from recommender.scores import evidence

    monkeypatch.setattr(evidence, "MAX_ITER", 2)  # the one fixed point of both paths
    F, y, _ = CASES["n>D"]
    with pytest.warns(RuntimeWarning, match="LogME stopped after 2 iterations") as record:
        logme(F, y)
    with pytest.warns(RuntimeWarning, match=re.escape(str(record[0].message))):
        logme_torch(F, y, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
def test_cuda_logme_equals_numpy():
    for name, (F, y, task) in CASES.items():
        assert logme_torch(F, y, device="cuda", task=task) == pytest.approx(logme(F, y, task), rel=RTOL), name
