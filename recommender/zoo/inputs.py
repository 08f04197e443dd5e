"""Batches of a provider's prepared inputs through a torch DataLoader, and the on-disk cache of prepared inputs
(decoded, resized and normalised images), so that models sharing a preprocessing prepare a dataset once."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import shutil
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from recommender.files import write_atomic

Inputs = dict[str, torch.Tensor]
Sink = Callable[[Inputs], None]


class Batches(TorchDataset):
    """Consecutive batches of `items` (a list or an array), each turned into encoder inputs by `prepare`: a
    map-style dataset of whole batches, so that DataLoader workers prepare batches while the encoder runs."""

    def __init__(self, prepare: Callable[[list | np.ndarray], Inputs], items: list | np.ndarray, batch_size: int):
        self.prepare, self.items, self.batch_size = prepare, items, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.items) / self.batch_size)

    def __getitem__(self, i: int) -> Inputs:
        return self.prepare(self.items[i * self.batch_size: (i + 1) * self.batch_size])

    def loader(self, workers: int = 0, pin_memory: bool = False) -> DataLoader:
        """The batches in order, prepared by `workers` processes (0: in this process, and always so inside a
        daemonic worker of a process pool, which may start no processes of its own)."""
        workers = 0 if multiprocessing.current_process().daemon else workers
        return DataLoader(self, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory)


class StoredInputs:
    """`prepare` for Batches over a cached array of inputs: a slice of it as the one named input tensor."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, rows: list | np.ndarray) -> Inputs:
        return {self.name: torch.from_numpy(np.array(rows))}  # a copy: the cached array is a read-only memory map


class InputCache:
    """Prepared inputs of one tensor per example (n x ...), stored as `<key>.npy` (float32 as the preprocessing
    gives them, so features from them are those without the cache) with a `<key>.json` sidecar naming the input,
    its shape and dtype. The key hashes the preprocessing configuration (`Provider.input_config`) and the dataset
    fingerprint. An entry that does not read back as the sidecar says is removed, with a warning, and rebuilt."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(config: str, fingerprint: str) -> str:
        """The cache key of a preprocessing configuration on a dataset."""
        return hashlib.sha256(json.dumps([config, fingerprint]).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        """Where the inputs of a key live."""
        return self.root / f"{key}.npy"

    def get(self, key: str, n: int) -> tuple[str, np.ndarray] | None:
        """The input's name and its n x ... array (memory-mapped, read-only), or None when absent or bad."""
        path, meta_path = self.path(key), self.path(key).with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if [list(array.shape), str(array.dtype)] != [meta["shape"], meta["dtype"]] or len(array) != n:
                raise ValueError(f"holds {array.dtype} {array.shape}, not {meta['dtype']} {meta['shape']} of {n}")
            return str(meta["name"]), array
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            warnings.warn(f"input cache: {path} is damaged ({reason}); removing it and rebuilding", stacklevel=2)
            for bad in (path, meta_path):
                with suppress(OSError):
                    if bad.is_dir() and not bad.is_symlink():
                        shutil.rmtree(bad)
                    else:
                        bad.unlink(missing_ok=True)
            return None

    def record(self, key: str, n: int, run: Callable[[Sink], None]) -> None:
        """Call `run` with a sink that stores each batch of prepared inputs, in order, as they come; the entry
        appears (atomically) only once `run` returns having stored all n examples."""
        self.root.mkdir(parents=True, exist_ok=True)
        state: dict = {"at": 0}

        def write(part: Path) -> None:
            def sink(inputs: Inputs) -> None:
                (name, tensor), = inputs.items()  # `input_config` promises one fixed-shape tensor per example
                rows = tensor.numpy()
                if "array" not in state:
                    state["meta"] = {"name": name, "shape": [n, *rows.shape[1:]], "dtype": str(rows.dtype)}
                    state["array"] = np.lib.format.open_memmap(part, mode="w+", dtype=rows.dtype,
                                                               shape=(n, *rows.shape[1:]))
                state["array"][state["at"]: state["at"] + len(rows)] = rows
                state["at"] += len(rows)

            run(sink)
            if state["at"] != n:
                raise RuntimeError(f"input cache: {state['at']} examples prepared, expected {n}")
            state["array"].flush()
            del state["array"]  # close the memory map before the file is moved into place

        path = self.path(key)
        write_atomic(path, write)
        try:
            write_atomic(path.with_suffix(".json"), lambda part: part.write_text(json.dumps(state["meta"])))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
