"""Hugging Face and timm models by name, folder or hub id, without network: tiny random models built here (ViT,
ConvNeXt, BERT with a WordPiece vocabulary written here), a fake Hugging Face cache (HF_HOME) in the hub's own
layout, the missing-model message, every name of the bundled histories parsed into a provider, and `rank
--from-history --preselect 20` end to end on tiny models registered under history names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from zoo_test_helpers import processed, tiny_bert, tiny_convnext, tiny_vit

from recommender.cli import main
from recommender.errors import UserError
from recommender.zoo.catalog import TIMM, history_models
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.zoos import get_provider


def into_cache(home: Path, repo: str, model: Path, revision: str = "0123abcd") -> Path:
    """Put a model folder into a fake Hugging Face cache under HF_HOME, in the hub's layout:
    hub/models--owner--name/snapshots/<revision>/ and refs/main naming the revision."""
    repo_dir = home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(model, snapshot)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache as HF_HOME, offline (HF_HUB_OFFLINE=1)."""
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def digits():
    return subsample(load_dataset("digits"), 40, seed=0)


def test_vit_and_convnext_folders_pool_as_the_architecture_says(tmp_path, digits):
    """A ViTModel folder pools with its trained pooler; a ViTForImageClassification checkpoint (no pooler weights)
    with the mean of the last hidden state; ConvNeXt with its pooler (layer norm of the mean)."""
    from transformers import AutoModel

    images = digits.items[:6]
    for folder, pool in ((tiny_vit(tmp_path / "vit"), "pooler"), (tiny_vit(tmp_path / "vitc", classifier=True), "mean"),
                         (tiny_convnext(tmp_path / "cnx"), "pooler")):
        p = get_provider(str(folder))
        assert (p.name, p.modality, type(p).__name__) == (folder.name, "image", "HFImageProvider")
        with torch.inference_mode():
            out = AutoModel.from_pretrained(folder)(pixel_values=processed(folder, images))
        want = out.pooler_output if pool == "pooler" else out.last_hidden_state.mean(dim=1)
        np.testing.assert_allclose(p.features(images), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")
def test_cuda_extraction_of_image_and_text_models(tmp_path, digits):
    """The tiny ViT and BERT give on the GPU (under bf16 or fp16 autocast) the CPU's features, to that rounding."""
    vit, bert = get_provider(str(tiny_vit(tmp_path / "vit"))), get_provider(str(tiny_bert(tmp_path / "bert")))
    for p, items in ((vit, digits.items[:8]), (bert, ["the cat is good", "i love this dog"])):
        np.testing.assert_allclose(p.features(items, device="cuda"), p.features(items, device="cpu"), rtol=5e-2,
                                   atol=5e-2)


def test_rank_takes_an_image_model_folder(tmp_path, capsys, digits):
    """The issue's case: `rank --data digits --models ./tiny-vit` ranked it as a text model and stopped."""
    folder = tiny_vit(tmp_path / "tiny-vit")
    code = main(["rank", "--data", "digits", "--n", "40", "--models", str(folder), "--scores", "logme", "--json",
                 "--cache", str(tmp_path / "cache"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    row = json.loads(out)[0]
    from recommender.scores import score_all

    ref = score_all(get_provider(str(folder)).features(digits.items), digits.y, names=["logme"])
    assert row["model"] == "tiny-vit" and row["score_logme"] == pytest.approx(float(ref["value"].iloc[0]), rel=1e-5)


def test_text_folder_tied_to_an_ownerless_history_name(tmp_path):
    """bert-base-uncased=FOLDER: the history's name, its stored facts, and mean-pooled features of the folder."""
    from transformers import AutoModel, AutoTokenizer

    folder = tiny_bert(tmp_path / "bert")
    p = get_provider(f"bert-base-uncased={folder}")
    assert (p.name, p.modality, p.facts.family, p.facts.pretrain_dataset) == ("bert-base-uncased", "text", "bert",
                                                                             "wikipedia")
    assert p.facts.params_m == pytest.approx(history_models()["bert-base-uncased"].facts["params_m"])
    texts = ["the cat is good", "i love this dog", "not a bad day"]
    enc = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = AutoModel.from_pretrained(folder)(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(p.features(texts), ((hidden * mask).sum(1) / mask.sum(1)).numpy(), rtol=1e-5,
                               atol=1e-6)


def test_hub_ids_resolve_offline_from_a_fake_cache(tmp_path, offline_home, digits):
    """With and without an owner, a hub id is read from $HF_HOME/hub's snapshot that refs/main names."""
    vit = tiny_vit(tmp_path / "vit", seed=3)
    into_cache(offline_home, "google/vit-base-patch16-224", vit)
    into_cache(offline_home, "bert-base-uncased", tiny_bert(tmp_path / "bert"))
    into_cache(offline_home, "someone/not-in-any-history", tiny_bert(tmp_path / "bert2", seed=2))
    hub = get_provider("google/vit-base-patch16-224")
    np.testing.assert_array_equal(hub.features(digits.items[:4]), get_provider(str(vit)).features(digits.items[:4]))
    assert hub.facts.family == "vit" and hub.modality == "image"
    text = get_provider("bert-base-uncased")
    assert text.modality == "text" and text.features(["the cat"]).shape == (1, 16)
    other = get_provider("someone/not-in-any-history")  # no history: its tokenizer says text
    assert other.modality == "text" and other.facts.family is None


def test_a_missing_model_is_one_line_naming_the_fetch_command(tmp_path, offline_home, capsys):
    code = main(["rank", "--data", "digits", "--n", "40", "--models", "google/vit-base-patch16-224",
                 "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "google/vit-base-patch16-224 is not in the Hugging Face cache" in err
    assert "recommender models fetch google/vit-base-patch16-224" in err and str(offline_home / "hub") in err
    with pytest.raises(UserError, match="recommender models fetch someone/unknown"):
        get_provider("someone/unknown")  # not in any history: its files are needed to know its modality
    with pytest.raises(UserError, match="unknown model 'no-such-model'"):
        get_provider("no-such-model")  # no owner, no history, not cached: never sent to the hub


def test_offline_flag_without_the_environment(tmp_path, offline_home, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    code = main(["rank", "--data", "tweets", "--n", "40", "--models", "bert-base-uncased", "--offline", "--quiet",
                 "--cache", str(tmp_path / "cache")])
    assert code == 2 and "bert-base-uncased is not in the Hugging Face cache" in capsys.readouterr().err


def test_every_history_name_parses_into_a_provider_without_loading(offline_home):
    """Each model of the bundled SHiFT, TransferGraph and timm histories (and timm/NAME, timm:NAME) becomes a
    provider of its history's modality under its history's name, with nothing loaded and no network."""
    from recommender.history.bundled import read_bundled

    names = set()
    for file in ("history_shift_vision.csv.gz", "history_shift_text.csv.gz", "history_transfergraph_image.csv.gz",
                 "history_transfergraph_text.csv.gz", "history_timm_imagenet_variants.csv.gz"):
        names |= set(read_bundled(file)["model"])
    known = history_models()
    assert len(names) > 1700 and names <= set(known)
    for name in sorted(names):
        # SHiFT names a few timm models timm/NAME already
        specs = [name, f"timm/{name}", f"timm:{name}"] if known[name].source == TIMM and "/" not in name else [name]
        for spec in specs:
            p = get_provider(spec)
            assert (p.name, p.modality) == (name, known[name].modality), spec
            assert getattr(p, "_encoder", None) is None
    assert type(get_provider("google/vit-base-patch16-224")).__name__ == "HFImageProvider"
    assert type(get_provider("bert-base-uncased")).__name__ == "TransformersProvider"
    assert type(get_provider("timm/resnet50.a1_in1k")).__name__ == "TimmProvider"
    shift_timm = get_provider("timm/vit_huge_patch14_224_in21k")  # SHiFT's name for a timm model on the hub
    assert (shift_timm.name, shift_timm.architecture) == ("timm/vit_huge_patch14_224_in21k",
                                                          "vit_huge_patch14_224_in21k")


def test_fetch_downloads_configs_and_one_kind_of_weights(tmp_path, monkeypatch, capsys):
    """`models fetch` asks the hub for the repository's files and downloads the ones a model needs into HF_HOME
    (the hub's two calls are replaced here: no test touches the network)."""
    import huggingface_hub

    from recommender.zoo.fetch_cli import hub_repo
    from recommender.zoo.hub import wanted_files

    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "onnx/model.onnx", "vocab.txt",
             "README.md", "preprocessor_config.json"]
    assert wanted_files(files) == ["config.json", "model.safetensors", "preprocessor_config.json", "vocab.txt"]
    assert wanted_files(["config.json", "pytorch_model.bin", "flax_model.msgpack"]) == ["config.json",
                                                                                        "pytorch_model.bin"]
    assert hub_repo("resnet50.a1_in1k") == hub_repo("timm:resnet50.a1_in1k") == "timm/resnet50.a1_in1k"
    assert hub_repo("bert-base-uncased") == "bert-base-uncased"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    vit = tiny_vit(tmp_path / "vit")
    asked = {}

    def fake_snapshot(repo, *, cache_dir, allow_patterns=None, local_files_only=False):
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        asked[repo] = (Path(cache_dir), allow_patterns)
        return str(into_cache(Path(cache_dir).parent, repo, vit))

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo: sorted(p.name for p in vit.iterdir()))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert main(["models", "fetch", "google/vit-base-patch16-224"]) == 0
    assert asked["google/vit-base-patch16-224"] == (tmp_path / "home" / "hub",
                                                    ["config.json", "model.safetensors", "preprocessor_config.json"])
    assert "google/vit-base-patch16-224: " in capsys.readouterr().out


def test_timm_model_from_a_weights_file(tmp_path, digits):
    """A timm model created with pretrained=False, saved, and loaded back through pretrained_cfg_overlay."""
    timm = pytest.importorskip("timm", reason="timm needs a torchvision that loads beside this torch")
    from safetensors.torch import save_file

    net = timm.create_model("resnet18", pretrained=False, num_classes=0)
    save_file(net.state_dict(), tmp_path / "model.safetensors")
    p = get_provider(f"timm/resnet18.a1_in1k={tmp_path}")
    assert (p.name, p.modality) == ("resnet18.a1_in1k", "image")
    features = p.features(digits.items[:4])
    config = timm.data.resolve_model_data_config(net)
    transform = timm.data.create_transform(**config, is_training=False)
    from PIL import Image

    x = torch.stack([transform(Image.fromarray(np.repeat(i[..., None], 3, axis=2))) for i in digits.items[:4]])
    with torch.inference_mode():
        np.testing.assert_allclose(features, net.eval()(x).numpy(), rtol=1e-4, atol=1e-5)


def test_timm_without_timm_is_one_line():
    try:
        import timm  # noqa: F401
    except (ImportError, RuntimeError):
        pass
    else:
        pytest.skip("timm imports here")
    with pytest.raises(UserError, match="timm models need timm"):
        get_provider("timm/resnet50.a1_in1k=" + str(Path(__file__))).encoder()


# ---- hybrid search: rank --from-history --preselect 20 on tiny models registered under history names ----

def history_store(folder: Path, models: list[str], modality: str) -> tuple[str, str]:
    """A store of these history models x 5 datasets of the modality (performance falling with the model's index,
    facts from the bundled histories), and an LR on d,m trained on it by the CLI."""
    from recommender.history import open_store

    rng = np.random.default_rng(0)
    known = history_models()
    jobs = pd.DataFrame([{"model": m, "dataset": f"d{d}", "metric": "top1", "protocol": "p",
                          "value": round(80 - 1.5 * i + rng.normal(0, 0.5), 3)}
                         for d in range(5) for i, m in enumerate(models)])
    facts = pd.DataFrame([{"model": m, **{k: v for k, v in known[m].facts.items() if v is not None}}
                          for m in models])
    datasets = pd.DataFrame({"dataset": [f"d{d}" for d in range(5)], "group": "g", "modality": modality,
                             "examples": 800.0, "classes": 10.0})
    url = f"sqlite:///{folder / 'history.db'}"
    open_store(url, create=True)
    facts.to_csv(folder / "models.csv", index=False)  # as a user would: through the CLI
    datasets.to_csv(folder / "datasets.csv", index=False)
    jobs.to_csv(folder / "jobs.csv", index=False)
    assert all(main(["history", "ingest", str(folder / f"{kind}.csv"), "--kind", kind, "--db", url, "--quiet"]) == 0
               for kind in ("models", "datasets", "jobs"))
    assert main(["train", "--recommender", "lr", "--protocol", "p", "--db", url, "--out", str(folder / "lr")]) == 0
    return url, str(folder / "lr")


@pytest.mark.parametrize("modality", ["image", "text"])
@pytest.mark.slow
def test_rank_from_history_preselects_then_ranks_on_the_data(tmp_path, offline_home, capsys, modality):
    """The task-agnostic stage's 20 picks are `recommend`'s top 20 for the data; 18 come from the fake cache, one
    through NAME=FOLDER, one is missing (kept after the scored ones, stage task-agnostic); the scored 19 are ranked
    by the recommender stacked with the computed score, which matches score_all on the model's own features."""
    from recommender.scores import score_all

    data = "digits" if modality == "image" else "tweets"
    names = [m.name for m in history_models().values() if m.source == "hf" and m.modality == modality][:24]
    url, lr = history_store(tmp_path, names, modality)
    capsys.readouterr()
    ds = subsample(load_dataset(data), 60, seed=0)
    assert main(["recommend", "--model", lr, "--db", url, "--dataset", data, "--examples", str(len(ds)),
                 "--classes", str(len(ds.classes)), "--modality", modality, "--top-k", "20", "--json"]) == 0
    picks = [r["model"] for r in json.loads(capsys.readouterr().out)]
    assert len(picks) == 20
    build = tiny_vit if modality == "image" else tiny_bert
    tied = build(tmp_path / "tied", seed=100)
    for i, name in enumerate(picks[2:]):
        into_cache(offline_home, name, build(tmp_path / f"m{i}", seed=i))
    code = main(["rank", "--data", data, "--n", "60", "--from-history", "--preselect", "20", "--recommender", lr,
                 "--db", url, "--models", f"{picks[0]}={tied}", "--scores", "logme", "--top-k", "20", "--json",
                 "--cache", str(tmp_path / "cache"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = pd.DataFrame(json.loads(captured.out))
    assert sorted(rows["model"]) == sorted(picks) and rows["rank"].tolist() == list(range(1, 21))
    assert (rows["stage"].iloc[:19] == "task-aware").all() and rows["stage"].iloc[19] == "task-agnostic"
    assert rows["model"].iloc[19] == picks[1] and rows["score_logme"].iloc[:19].notna().all()
    assert rows.set_index("model")["agnostic_rank"].reindex(picks).tolist() == list(range(1, 21))
    assert rows["combined"].iloc[:19].is_monotonic_decreasing
    tied_row = rows.set_index("model").loc[picks[0]]
    F = get_provider(str(tied)).features(ds.items)
    assert tied_row["score_logme"] == pytest.approx(float(score_all(F, ds.y, names=["logme"])["value"].iloc[0]),
                                                    rel=1e-4)
    notes = rows["notes"].iloc[0]
    stages = next(n for n in notes if n.startswith("stages: task-agnostic"))
    assert "top 20 of 24 history models" in stages and "features and scores of 19 model(s)" in stages
    assert f"recommender models fetch {picks[1]}" in stages
