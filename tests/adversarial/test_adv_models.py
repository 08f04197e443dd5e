"""Attacks on saved recommenders and on rankings without evidence (issue 9, items 1 and 9).

A model folder is JSON plus an .npz read without pickle: a pickle anywhere in it never runs (a marker file its
``__reduce__`` would create stays absent), and every tampered field gives one line with exit code 2. Rankings that
rest on nothing learned (unknown models, a dataset without facts, a modality never trained on) warn or refuse.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pair_tables import image_pairs
from recommend_helpers import fitted

from recommender.cli import main
from recommender.errors import UserError
from recommender.history import open_store
from recommender.history.ingest import ingest_file
from recommender.models import FMRecommender, LinearRecommender, load_recommender
from recommender.models.evidence import EvidenceWarning, check_evidence
from recommender.models.saved import LEGACY_FILE, META_FILE, WEIGHTS_FILE

ZOO = Path(__file__).parents[1] / "data" / "history" / "small_zoos_long.csv"  # 4 models x 2 datasets, no facts


class Payload:
    """Unpickling this creates the file ``marker``: the stand-in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store holding the 8 small-zoo jobs under protocol full-finetune."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'history.db'}"
    assert ingest_file(open_store(url, create=True), ZOO, constants={"protocol": "full-finetune"})["jobs"] == 8
    return url


@pytest.fixture(scope="module")
def lr_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LR on d,m trained on image pairs, saved with the store's protocol so `recommend` finds a pool."""
    return fitted("lr", "d,m").save(tmp_path_factory.mktemp("lr") / "model", training={"protocol": "full-finetune"})


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the stderr lines of one `recommender` command."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def one_error_line(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """Run a command that must fail with exactly one prefixed error line (no traceback) and return that line."""
    code, _, lines = run(capsys, *argv)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"recommender {argv[0]}: error: "), lines
    return lines[0]


def recommend_fails(capsys: pytest.CaptureFixture, folder: Path, db: Path) -> str:
    """`recommend --model folder` against a store path that does not exist: the model is refused first."""
    line = one_error_line(capsys, "recommend", "--model", str(folder), "--dataset", "dtd", "--db", str(db))
    assert not db.exists()  # refused before the store is opened: nothing is created
    return line


def copy_of(folder: Path, tmp_path: Path) -> Path:
    """A copy of a saved folder to tamper with."""
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def edit_meta(folder: Path, change) -> None:
    """Rewrite recommender.json through ``change(meta)`` (the attacker keeps the file valid JSON)."""
    meta = json.loads((folder / META_FILE).read_text())
    change(meta)
    (folder / META_FILE).write_text(json.dumps(meta))


def write_weights(folder: Path, arrays: dict, *, pin: bool = True) -> None:
    """Replace weights.npz; with ``pin`` also update the checksum in the metadata, as a careful attacker would."""
    np.savez(folder / WEIGHTS_FILE, **arrays)
    if pin:
        digest = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
        edit_meta(folder, lambda meta: meta["weights"].update(sha256=digest))


def saved_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The arrays of a saved weights.npz."""
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


# ---------------------------------------------------------------- pickles never run


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """Control: the payload creates its marker when unpickled, so the marker checks below can fail."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


def old_joblib_folder(folder: Path, marker: Path, with_meta: bool = True) -> Path:
    """A model folder as versions before the JSON format wrote it, its estimator.joblib a malicious pickle."""
    folder.mkdir()
    (folder / LEGACY_FILE).write_bytes(pickle.dumps(Payload(marker)))
    if with_meta:
        (folder / META_FILE).write_text(json.dumps({"kind": "fm", "params": {"k": 16}, "version": "0.1.0"}))
    return folder


@pytest.mark.parametrize("with_meta", [True, False])
def test_malicious_joblib_is_refused_by_recommend_without_running(capsys, tmp_path, with_meta):
    folder = old_joblib_folder(tmp_path / "shared", tmp_path / "marker", with_meta)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert not (tmp_path / "marker").exists()
    kind = "fm" if with_meta else "lr"  # the old metadata's kind fills in the retrain command
    assert f"{LEGACY_FILE}" in line and f"recommender train --recommender {kind} --out {folder}" in line
    assert (folder / LEGACY_FILE).exists()  # refused, not deleted: it is the user's file


def test_malicious_joblib_is_refused_by_rank_before_any_feature_is_extracted(capsys, tmp_path):
    folder = old_joblib_folder(tmp_path / "shared", tmp_path / "marker")
    line = one_error_line(capsys, "rank", "--data", "austen", "--n", "40", "--models", "glove-6B-50d",
                          "--recommender", str(folder), "--cache", str(tmp_path / "cache"))
    assert not (tmp_path / "marker").exists()
    assert "pickle" in line and "recommender train --recommender fm" in line
    assert not (tmp_path / "cache").exists()  # refused before extraction


def test_a_pickle_in_place_of_the_weights_never_runs(capsys, lr_folder, tmp_path):
    """A pickle as weights.npz, its checksum pinned in the metadata: not a zip archive, refused unread."""
    folder = copy_of(lr_folder, tmp_path)
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps(Payload(tmp_path / "marker")))
    digest = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    edit_meta(folder, lambda meta: meta["weights"].update(sha256=digest))
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert not (tmp_path / "marker").exists() and line.endswith(f"{folder / WEIGHTS_FILE}: not an .npz archive")


def test_an_object_array_in_the_npz_never_runs(capsys, lr_folder, tmp_path):
    """An .npz whose coef is an object array (pickled inside the zip): np.load refuses it without unpickling."""
    folder = copy_of(lr_folder, tmp_path)
    arrays = saved_arrays(folder)
    arrays["coef"] = np.array([Payload(tmp_path / "marker")], dtype=object)
    write_weights(folder, arrays)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert not (tmp_path / "marker").exists()
    assert line.endswith(f"{folder / WEIGHTS_FILE}: array coef: holds Python objects (dtype object), which are never "
                         "loaded because loading them can run code; save numbers or text")


# ---------------------------------------------------------------- tampered metadata and weights: one line each


def _set(path: tuple, value):
    """A metadata edit that sets meta[path[0]][path[1]]... to value."""
    def change(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


TAMPERED_META = {
    "unknown kind": (_set(("kind",), "svm"), "unknown recommender kind 'svm' (known: lr, fm)"),
    "kind not a string": (_set(("kind",), ["lr"]), '"kind" must be a string'),
    "unknown param": (_set(("params", "gamma"), 1.0), '"params" must hold exactly the lr hyper-parameters'),
    "param as object": (_set(("params", "alpha"), {"__class__": "x"}), '"params"."alpha" must be a string, number'),
    "negative alpha": (_set(("params", "alpha"), -1), "LinearRecommender: alpha=-1 must be a finite number >= 0"),
    "string interactions": (_set(("params", "interactions"), "yes"),
                            "LinearRecommender: interactions='yes' must be true or false"),
    "unknown target": (_set(("params", "target"), "rank"), "unknown target 'rank'"),
    "newer format": (_set(("format_version",), 2), "format version 2, this version reads 1"),
    "no format": (_set(("format",), "pickle"), 'not a saved recommender (no "format": "recommender-state")'),
    "changed feature set": (_set(("params", "features"), "d,m,logme"), "array coef is float64["),
    "encoder duplicate model": (_set(("encoder", "categories", "model"), ["m0", "m0"]),
                                "encoder categories of model must be a list of distinct strings"),
    "encoder NaN mean": (_set(("encoder", "mean", 0), float("nan")), "encoder mean holds a non-finite value"),
    "encoder zero scale": (_set(("encoder", "scale", 1), 0.0), "encoder scale must be positive"),
    "encoder short impute": (lambda meta: meta["encoder"]["impute"].pop(), "encoder impute must be a list of 6"),
    "training modalities": (_set(("training", "modalities"), "image"), '"modalities" must be a list of strings'),
    "no checksum": (_set(("weights",), {}), '"weights" must hold the sha256 of weights.npz'),
}


@pytest.mark.parametrize("case", list(TAMPERED_META))
def test_tampered_metadata_gives_one_line(capsys, lr_folder, tmp_path, case):
    folder = copy_of(lr_folder, tmp_path)
    change, message = TAMPERED_META[case]
    edit_meta(folder, change)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert message in line and str(folder) in line


@pytest.mark.parametrize("text, message", [
    ('{"format": "recommender-state", "format_version": 1, "kind": "lr", "par', "not valid JSON (JSONDecodeError)"),
    ("[" * 100_000, "not valid JSON (RecursionError)"),
    ("[1, 2]", "not a saved recommender"),
    ("\udcff", "not valid JSON (UnicodeDecodeError)"),
])
def test_broken_metadata_json_gives_one_line(capsys, lr_folder, tmp_path, text, message):
    folder = copy_of(lr_folder, tmp_path)
    (folder / META_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert message in recommend_fails(capsys, folder, tmp_path / "no-store.db")


@pytest.mark.parametrize("case", ["short coef", "float32 coef", "extra array", "missing array", "NaN weight",
                                  "inf intercept", "matrix intercept"])
def test_tampered_weights_give_one_line(capsys, lr_folder, tmp_path, case):
    """Arrays rewritten with the checksum updated, so each is caught by the array checks themselves."""
    folder = copy_of(lr_folder, tmp_path)
    arrays = saved_arrays(folder)
    width = len(arrays["coef"])
    message = {
        "short coef": f"array coef is float64[{width - 1}], expected float64[{width}]",
        "float32 coef": f"array coef is float32[{width}], expected float64[{width}]",
        "extra array": "holds arrays coef, intercept, payload, expected coef, intercept",
        "missing array": "holds arrays coef, expected coef, intercept",
        "NaN weight": "array coef holds NaN or infinite values",
        "inf intercept": "array intercept holds NaN or infinite values",
        "matrix intercept": "array intercept is float64[1, 1], expected float64[]",
    }[case]
    if case == "short coef":
        arrays["coef"] = arrays["coef"][:-1]
    elif case == "float32 coef":
        arrays["coef"] = arrays["coef"].astype(np.float32)
    elif case == "extra array":
        arrays["payload"] = np.zeros(3)
    elif case == "missing array":
        del arrays["intercept"]
    elif case == "NaN weight":
        arrays["coef"][5] = np.nan
    elif case == "inf intercept":
        arrays["intercept"] = np.asarray(np.inf)
    else:
        arrays["intercept"] = np.zeros((1, 1))
    write_weights(folder, arrays)
    assert message in recommend_fails(capsys, folder, tmp_path / "no-store.db")


def test_fm_factors_must_match_k_and_the_encoder(capsys, tmp_path):
    folder = fitted("fm").save(tmp_path / "fm")
    arrays = saved_arrays(folder)
    width, k = arrays["factors"].shape
    arrays["factors"] = np.zeros((width, k + 1), dtype=np.float32)
    write_weights(folder, arrays)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert f"array factors is float32[{width}, {k + 1}], expected float32[{width}, {k}]" in line


def test_an_oversized_entry_is_refused_before_it_is_read(capsys, lr_folder, tmp_path):
    """A coef entry of 8 MB (a zip bomb's first step) is refused from the file's size alone, before hashing it."""
    folder = copy_of(lr_folder, tmp_path)
    arrays = saved_arrays(folder)
    arrays["coef"] = np.zeros(1_000_000)
    write_weights(folder, arrays)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert f"{folder / WEIGHTS_FILE}: {(folder / WEIGHTS_FILE).stat().st_size} bytes, more than the " in line
    assert line.endswith("that recommender.json's arrays take: not the weights of this recommender")


def test_a_hand_inflated_vocabulary_is_refused_before_any_allocation(capsys, tmp_path):
    """70,000 made-up model ids and k = 4,096 would ask for 1.1 GiB of FM factors: refused from the metadata alone."""
    folder = fitted("fm").save(tmp_path / "fm")

    def inflate(meta):
        meta["encoder"]["categories"]["model"] = [f"fake-{i:05d}" for i in range(70_000)]
        meta["params"]["k"] = 4096

    edit_meta(folder, inflate)
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert "MiB of weights, more than 1024 MiB" in line


def test_truncated_weights_give_one_line(capsys, lr_folder, tmp_path):
    """Half a weights.npz: the checksum catches it; with the checksum forged, the zip reader's error is one line."""
    folder = copy_of(lr_folder, tmp_path)
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert "does not match recommender.json (changed, truncated or left by another save)" in line
    digest = hashlib.sha256(data[: len(data) // 2]).hexdigest()
    edit_meta(folder, lambda meta: meta["weights"].update(sha256=digest))
    line = recommend_fails(capsys, folder, tmp_path / "no-store.db")
    assert "unreadable weights archive (BadZipFile" in line


def test_missing_weights_give_one_line(capsys, lr_folder, tmp_path):
    folder = copy_of(lr_folder, tmp_path)
    (folder / WEIGHTS_FILE).unlink()
    assert "weights.npz missing" in recommend_fails(capsys, folder, tmp_path / "no-store.db")


def test_a_save_interrupted_before_the_metadata_is_refused(lr_folder, tmp_path, monkeypatch):
    """Weights are written first; a save that dies before the metadata leaves new weights beside the old metadata,
    which the pinned checksum refuses instead of pairing them."""
    folder = copy_of(lr_folder, tmp_path)
    other = fitted("lr", "d,m", image_pairs(seed=7))

    def die(path, text, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", die)
    with pytest.raises(OSError, match="disk full"):
        other.save(folder)
    monkeypatch.undo()
    with pytest.raises(UserError, match="does not match recommender.json"):
        load_recommender(folder)
    assert sorted(p.name for p in folder.iterdir()) == [META_FILE, WEIGHTS_FILE]  # no temporary file left


# ---------------------------------------------------------------- exact round trip


@pytest.mark.parametrize("kind", ["lr", "fm"])
def test_round_trip_is_bitwise_and_holds_no_pickle(tmp_path, kind):
    """Predictions after load equal those before bit for bit: the encoder statistics go through JSON as the
    shortest repr of each float64 (exact), the weights through .npz in their own dtype; the arithmetic is the same.
    Held-out rows include unseen models and a dataset with missing facts and scores."""
    pairs = image_pairs(seed=3)
    train = pairs[pairs["dataset"] != "d4"]
    est = fitted(kind, "d,m,logme", train)
    test = pd.concat([pairs[pairs["dataset"] == "d4"],
                      train.head(3).assign(model="unseen", params_m=np.nan, score_logme=np.nan, examples=np.nan)])
    folder = est.save(tmp_path / kind)
    assert sorted(p.name for p in folder.iterdir()) == [META_FILE, WEIGHTS_FILE]
    torch.manual_seed(11)
    state = torch.random.get_rng_state()
    back = load_recommender(folder)
    assert torch.equal(torch.random.get_rng_state(), state)  # loading an FM leaves the global seed alone
    assert type(back) is type(est) and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(test), est.predict(test))
    np.testing.assert_array_equal(back.encoder_.transform(test), est.encoder_.transform(test))
    assert back.training_ == {"modalities": ["image"], "pairs": len(train), "models": 12, "datasets": 4}
    with zipfile.ZipFile(folder / WEIGHTS_FILE) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert header.startswith(b"\x93NUMPY") and b"'descr': '|O'" not in header


def test_saving_over_an_old_joblib_folder_removes_the_pickle(lr_folder, tmp_path):
    """Retraining into an old folder leaves no pickle behind."""
    folder = copy_of(lr_folder, tmp_path)
    (folder / LEGACY_FILE).write_bytes(b"old pickle")
    fitted("lr", "d,m").save(folder)
    assert not (folder / LEGACY_FILE).exists()
    assert isinstance(load_recommender(folder), LinearRecommender)


def test_the_class_loader_refuses_the_other_kind(tmp_path):
    folder = fitted("fm").save(tmp_path / "fm")
    with pytest.raises(UserError, match=r"holds a 'fm' recommender, not a LinearRecommender"):
        LinearRecommender.load(folder)
    assert isinstance(FMRecommender.load(folder), FMRecommender)


# ---------------------------------------------------------------- evidence: warnings and the modality refusal


def evidence_warnings(est, pairs: pd.DataFrame, allow: bool = False) -> list[str]:
    """The EvidenceWarning messages check_evidence gives for the pairs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_evidence(est, pairs, allow)
    assert all(issubclass(w.category, EvidenceWarning) for w in caught)
    return [str(w.message) for w in caught]


def test_no_warning_where_the_evidence_is_there():
    pairs = image_pairs()
    est = fitted("lr", "d,m,logme", pairs)
    assert evidence_warnings(est, pairs) == []
    new = pairs[pairs["dataset"] == "d0"].assign(dataset="fresh", group=np.nan)  # a group is optional
    assert evidence_warnings(est, new) == []


def test_unknown_models_without_facts_are_named_and_their_predictions_tie():
    est = fitted("lr", "d,m")
    pairs = image_pairs()
    pool = pd.DataFrame({"model": ["x/a", "x/b", "m1"]}).merge(
        pairs[pairs["dataset"] == "d0"].drop(columns="model").head(1), how="cross")
    pool.loc[pool["model"] != "m1", ["family", "pretrain_dataset", "params_m", "gmacs", "input_size",
                                     "imagenet_top1"]] = np.nan
    assert evidence_warnings(est, pool) == [
        ("2 of 3 pool models are unknown to the recommender and have no facts or scores (x/a, x/b): "
         "their predictions tie")]
    predicted = est.predict(pool)
    assert predicted[0] == predicted[1] != predicted[2]


def test_a_new_dataset_without_facts_warns_and_so_does_one_without_some():
    est = fitted("lr", "d,m")
    pool = image_pairs()
    pool = pool[pool["dataset"] == "d0"].assign(dataset="my-new-task", group=np.nan, modality=np.nan,
                                                examples=np.nan, classes=np.nan)
    assert evidence_warnings(est, pool) == [
        ("dataset my-new-task is new to the recommender and has no facts (group, modality, examples, classes): "
         "its ranking is the one any new dataset gets")]
    assert evidence_warnings(est, pool.assign(classes=10.0)) == [
        ("dataset my-new-task is new to the recommender and lacks modality, examples: "
         "those features take their training defaults")]


def test_missing_scores_are_counted_per_dataset():
    pairs = image_pairs()
    est = fitted("lr", "d,m,logme", pairs)
    pool = pairs[pairs["dataset"] == "d1"].copy()
    pool.loc[pool.index[:2], "score_logme"] = np.nan
    assert evidence_warnings(est, pool) == [
        "score_logme is missing for 2 of 12 models on d1 (m0, m1): the dataset mean stands in"]


def test_a_modality_never_trained_on_is_refused_unless_allowed():
    pairs = image_pairs()
    est = fitted("lr", "d,m", pairs)
    text = pairs[pairs["dataset"] == "d0"].assign(dataset="news", modality="text")
    with pytest.raises(UserError, match="^the recommender was trained on image datasets only, and news is text: "
                                        "its ranking would rest on nothing learned; pass --allow-modality-mismatch"):
        check_evidence(est, text)
    assert evidence_warnings(est, text, allow=True) == [
        ("the recommender was trained on image datasets only, and news is text; ranking anyway "
         "(--allow-modality-mismatch)")]


def test_recommend_refuses_another_modality_in_one_line_and_allows_it_on_request(capsys, lr_folder, store_url):
    argv = ["recommend", "--model", str(lr_folder), "--dataset", "news", "--modality", "text", "--classes", "4",
            "--examples", "1000", "--db", store_url]
    line = one_error_line(capsys, *argv)
    assert line.endswith("news is text: its ranking would rest on nothing learned; pass --allow-modality-mismatch "
                         "to rank anyway")
    code, out, lines = run(capsys, *argv, "--allow-modality-mismatch", "--csv")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 4
    assert "recommender recommend: warning: the recommender was trained on image datasets only, and news is text; " \
           "ranking anyway (--allow-modality-mismatch)" in lines
    assert all(line.startswith("recommender recommend: warning: ") for line in lines)


def test_recommend_warns_one_line_each_for_unknown_models_and_a_dataset_without_facts(capsys, lr_folder,
                                                                                      store_url, tmp_path):
    """The issue's case: a pool of unknown models on a new dataset printed a ranking of ties without a word."""
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"model": ["p/one", "p/two", "p/three"]}).to_csv(pool, index=False)
    code, out, lines = run(capsys, "recommend", "--model", str(lr_folder), "--dataset", "my-new-task",
                           "--pool", str(pool), "--db", store_url, "--json")
    assert code == 0
    assert len({r["predicted_z"] for r in json.loads(out)}) == 1  # the ties the warnings explain
    assert lines == [
        ("recommender recommend: warning: dataset my-new-task is new to the recommender and has no facts "
         "(group, modality, examples, classes): its ranking is the one any new dataset gets"),
        ("recommender recommend: warning: 3 of 3 pool models are unknown to the recommender and have no facts or "
         "scores (p/one, p/two, p/three): their predictions tie"),
    ]


def test_rank_refuses_a_recommender_trained_on_images_for_a_text_dataset(capsys, lr_folder, store_url, tmp_path):
    argv = ["rank", "--data", "austen", "--n", "40", "--models", "glove-6B-50d", "--scores", "logme",
            "--recommender", str(lr_folder), "--cache", str(tmp_path / "cache"), "--db", store_url, "--json"]
    line = one_error_line(capsys, *argv)
    assert "trained on image datasets only, and austen is text" in line and "--allow-modality-mismatch" in line
    assert not (tmp_path / "cache").exists()  # refused before any feature is extracted
    code, out, lines = run(capsys, *argv, "--allow-modality-mismatch")
    assert code == 0 and np.isfinite(json.loads(out)[0]["predicted"])
    assert lines[0] == ("recommender rank: warning: the recommender was trained on image datasets only, and austen "
                        "is text; ranking anyway (--allow-modality-mismatch)")
    assert [line for line in lines[1:] if "warning" in line or "error" in line] == []  # then only the evidence line
    assert lines[1].startswith("recommender rank: ordered by lr")


def test_rank_refuses_a_recommender_whose_scores_are_not_computed(capsys, tmp_path):
    pairs = image_pairs().assign(score_parc=lambda frame: -frame["score_logme"])
    folder = fitted("lr", "d,m,parc", pairs).save(tmp_path / "lr")
    line = one_error_line(capsys, "rank", "--data", "austen", "--n", "40", "--models", "glove-6B-50d",
                          "--scores", "logme", "--recommender", str(folder), "--cache", str(tmp_path / "cache"))
    assert line.endswith("the recommender's features d,m,parc need score(s) parc: add them to --scores")
