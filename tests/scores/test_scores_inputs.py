"""Bad input gives one clear ValueError naming the problem; arrays load from every supported file type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.arrays import load_array
from recommender.cli import main
from recommender.scores import hscore, knn_accuracy, leep, lfc, linear_probe_accuracy, logme, nce, parc, score_all

RNG = np.random.default_rng(0)
F = RNG.normal(size=(40, 5))
Y = np.arange(40) % 3
CLASS_ONLY = [hscore, lfc, parc, knn_accuracy]


@pytest.mark.parametrize("bad, message", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite")])
@pytest.mark.parametrize("score", [logme, *CLASS_ONLY, linear_probe_accuracy])
def test_non_finite_features(score, bad, message):
    broken = F.copy()
    broken[3, 2] = bad
    with pytest.raises(ValueError, match=message):
        score(broken, Y)


@pytest.mark.parametrize("score", [logme, *CLASS_ONLY, linear_probe_accuracy])
def test_length_mismatch(score):
    with pytest.raises(ValueError, match="length mismatch"):
        score(F, Y[:-1])


@pytest.mark.parametrize("score", [logme, *CLASS_ONLY])
def test_fewer_than_two_classes(score):
    with pytest.raises(ValueError, match="at least 2 classes"):
        score(F, np.zeros(40, dtype=int))


@pytest.mark.parametrize("score", CLASS_ONLY)
def test_regression_targets_to_a_class_only_score(score):
    with pytest.raises(ValueError, match="regression targets"):
        score(F, RNG.normal(size=40))
    with pytest.raises(ValueError, match="1-D class labels"):
        score(F, RNG.normal(size=(40, 2)))


@pytest.mark.parametrize("score", [logme, *CLASS_ONLY])
def test_fewer_than_two_examples(score):
    with pytest.raises(ValueError, match="at least 2 examples"):
        score(F[:1], Y[:1])


def test_source_score_inputs():
    P = RNG.dirichlet(np.ones(4), 40)
    with pytest.raises(ValueError, match="sum to 1"):
        leep(P * 2, Y)
    with pytest.raises(ValueError, match="negative"):
        leep(P - 0.5, Y)
    with pytest.raises(ValueError, match="length mismatch"):
        leep(P, Y[:-2])
    with pytest.raises(ValueError, match="hard labels"):
        nce(P, Y)
    with pytest.raises(ValueError, match="regression targets"):
        nce(P.argmax(axis=1), RNG.normal(size=40))


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="task must be one of"):
        logme(F, Y, task="ranking")
    with pytest.raises(ValueError, match="all zeros"):
        logme(F, np.zeros(40), task="regression")
    with pytest.raises(ValueError, match="features are all zero"):
        logme(np.zeros((40, 3)), Y)
    with pytest.raises(ValueError, match="constant"):
        lfc(np.ones((40, 3)), Y)
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(F, Y, k=40)
    with pytest.raises(ValueError, match="smallest class has 1 example"):
        linear_probe_accuracy(F, np.r_[Y[:-1], 3])
    with pytest.raises(ValueError, match="2-D"):
        logme(F[:, 0], Y)
    with pytest.raises(ValueError, match="numeric"):
        logme(np.full((40, 2), "a"), Y)


def test_logme_names_repeated_examples_when_the_evidence_is_unbounded():
    # n < D with one example repeated under the same label: y lies in col(F) while rank(F) < n, so the
    # evidence grows without bound as the noise precision b -> inf (+(n - r)/2 log b): an error, not a number.
    rng = np.random.default_rng(0)
    F = rng.normal(size=(20, 50))
    F[19] = F[0]
    y = np.arange(20) % 4
    y[19] = y[0]
    with pytest.raises(ValueError, match="repeated or linearly dependent examples"):
        logme(F, y)
    assert np.isfinite(logme(F[:19], y[:19]))


def test_score_all_rejects_unknown_or_inapplicable_names():
    with pytest.raises(ValueError, match="unknown score"):
        score_all(F, Y, names=["logme", "magic"])
    with pytest.raises(ValueError, match="needs class labels"):
        score_all(F, RNG.normal(size=40), names=["hscore"], task="regression")
    with pytest.raises(ValueError, match="source model's probabilities"):
        score_all(F, Y, names=["leep"])


def test_score_all_errors_nan_keeps_the_other_scores(monkeypatch):
    import dataclasses

    from recommender.errors import UserError
    from recommender.scores import registry

    def unbounded(_inputs):
        raise UserError("LogME is unbounded")

    monkeypatch.setitem(registry.SCORES, "logme", dataclasses.replace(registry.SCORES["logme"], compute=unbounded))
    with pytest.raises(ValueError, match="unbounded"):
        score_all(F, Y, names=["logme", "lfc"])  # the default still raises
    table = score_all(F, Y, names=["logme", "lfc"], errors="nan").set_index("score")
    assert list(table.columns) == ["value", "seconds", "error"]
    assert np.isnan(table.at["logme", "value"]) and table.at["logme", "error"] == "LogME is unbounded"
    assert table.at["lfc", "value"] == lfc(F, Y) and pd.isna(table.at["lfc", "error"])
    with pytest.raises(ValueError, match="errors must be"):
        score_all(F, Y, names=["lfc"], errors="ignore")


def test_load_array_formats(tmp_path):
    np.save(tmp_path / "f.npy", F)
    np.savez(tmp_path / "both.npz", f=F, y=Y)
    np.savez(tmp_path / "one.npz", F)
    pd.DataFrame(F, columns=[f"x{i}" for i in range(5)]).to_csv(tmp_path / "header.csv", index=False)
    np.savetxt(tmp_path / "plain.csv", F, delimiter=",")
    pd.DataFrame({"label": Y}).to_parquet(tmp_path / "y.parquet")
    for name in ("f.npy", "both.npz:f", "one.npz", "header.csv", "plain.csv"):
        np.testing.assert_allclose(load_array(tmp_path / name if ":" not in name else f"{tmp_path}/{name}"), F)
    np.testing.assert_array_equal(load_array(tmp_path / "y.parquet"), Y)
    with pytest.raises(ValueError, match="name one"):
        load_array(tmp_path / "both.npz")
    with pytest.raises(ValueError, match="no array 'z'"):
        load_array(f"{tmp_path}/both.npz:z")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_array(tmp_path / "missing.npy")
    (tmp_path / "f.txt").write_text("1 2")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_array(tmp_path / "f.txt")


def test_cli_table_json_and_errors(tmp_path, capsys):
    np.save(tmp_path / "f.npy", F)
    pd.DataFrame({"label": [f"class{c}" for c in Y]}).to_csv(tmp_path / "y.csv", index=False)
    np.save(tmp_path / "p.npy", RNG.dirichlet(np.ones(4), 40))
    args = ["score", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.csv")]
    assert main(args + ["--metrics", "logme,lfc,leep", "--source-probs", str(tmp_path / "p.npy")]) == 0
    out = capsys.readouterr().out
    assert out.split("\n")[0].split() == ["score", "value", "seconds"]
    assert f"{logme(F, Y):.6g}" in out  # string class names give the same classes as integer codes
    assert main(args + ["--metrics", "hscore", "--json"]) == 0
    assert '"score": "hscore"' in capsys.readouterr().out
    assert main(args + ["--metrics", "leep"]) == 2
    assert "needs the source model's probabilities" in capsys.readouterr().err
    assert main(["score", "--features", str(tmp_path / "nope.npy"), "--labels", str(tmp_path / "y.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
