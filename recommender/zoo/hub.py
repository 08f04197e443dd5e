"""The Hugging Face hub as practitioners use it: weights in the local cache (`HF_HOME`), read offline with
`HF_HUB_OFFLINE=1` or `--offline`, fetched ahead of time with `recommender models fetch`.

A hub model is always loaded from its snapshot folder in the cache (`snapshot_folder`), so a folder and a hub id go
through the same checked loading code. huggingface_hub is imported only by the functions that reach the hub."""

from __future__ import annotations

import os
from pathlib import Path

from recommender.errors import UserError

# files a model needs besides its weights: configs, vocabularies, tokenizer models (top level only: no onnx/, tf/)
_SMALL_FILES = (".json", ".txt", ".model", ".tiktoken")
_TRUE = ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (huggingface_hub's own rule:
    HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "huggingface" / "hub"


def offline_from_env() -> bool:
    """Whether the environment asks for offline work (HF_HUB_OFFLINE, or transformers' TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def fetch_command(name: str) -> str:
    """The command that downloads a model into the cache ahead of time."""
    return f"recommender models fetch {name}"


def missing_message(name: str) -> str:
    """One line: the model is not in the local cache, and how to get it there."""
    return (f"model {name} is not in the Hugging Face cache {hub_cache_dir()} and this run is offline: "
            f"on a machine with network run `{fetch_command(name)}` (or point HF_HOME at a cache that holds it)")


def cached_snapshot(repo: str) -> Path | None:
    """The cached snapshot folder of a hub repository (its refs/main revision), or None when the cache lacks it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, cache_dir=hub_cache_dir(), local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError):
        return None


def wanted_files(files: list[str]) -> list[str]:
    """Of a hub repository's files, the ones a model needs: top-level configs and vocabularies, and one kind of
    weights (safetensors where the repository has them, else PyTorch .bin; never TensorFlow, Flax or ONNX)."""
    top = [f for f in files if "/" not in f]
    weights = ([f for f in top if f.endswith(".safetensors") or f == "model.safetensors.index.json"]
               or [f for f in top if f.startswith("pytorch_model") and (f.endswith(".bin") or f.endswith(".json"))])
    return sorted({*weights, *(f for f in top if f.endswith(_SMALL_FILES))})


def download(repo: str) -> Path:
    """Download what a hub model needs (`wanted_files`) into the cache; returns its snapshot folder. A repository
    that does not exist, or a hub that cannot be reached, is one line."""
    from huggingface_hub import list_repo_files, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        files = wanted_files(list_repo_files(repo))
        return Path(snapshot_download(repo, cache_dir=hub_cache_dir(), allow_patterns=files))
    except GatedRepoError:
        raise UserError(f"model {repo}: gated on the Hugging Face hub: accept its terms and log in (hf auth login)")\
            from None
    except (RepositoryNotFoundError, HFValidationError):
        raise UserError(f"model {repo}: no such model on the Hugging Face hub") from None
    except OSError as e:  # connection errors are OSErrors (requests/httpx wrap them so)
        raise UserError(f"model {repo}: cannot reach the Hugging Face hub ({' '.join(str(e).split())[:200]}); "
                        "with no network, use --offline and a cache that holds it") from None


def snapshot_folder(repo: str, offline: bool) -> Path:
    """The local folder of a hub model: its cached snapshot, downloaded first unless offline (or HF_HUB_OFFLINE);
    a model missing offline is one line naming the command that fetches it (`missing_message`)."""
    folder = cached_snapshot(repo)
    if folder is not None and has_weights(folder):  # a snapshot of configs alone (an interrupted fetch) is not one
        return folder
    if offline or offline_from_env():
        raise UserError(missing_message(repo))
    return download(repo)


def has_weights(folder: Path) -> bool:
    """Whether a model folder holds weights (safetensors or PyTorch .bin)."""
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def folder_modality(folder: Path) -> str | None:
    """A model folder's modality from its own files: an image processor config means image, a tokenizer text;
    None when it holds neither."""
    if (folder / "preprocessor_config.json").is_file() or (folder / "image_processor_config.json").is_file():
        return "image"
    if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                                            "spiece.model", "sentencepiece.bpe.model")):
        return "text"
    return None
