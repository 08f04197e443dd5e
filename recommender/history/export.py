"""Export the store to long-format files (which `history ingest` reads back unchanged) and summarise it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from recommender.files import check_output_files, write_output_folder
from recommender.history.records import EXTRA_PREFIX, HP_PREFIX, text_or_none
from recommender.history.store import Store
from recommender.history.url import sqlite_path

KINDS = ("jobs", "models", "datasets", "scores", "protocols", "dataset_aliases")  # the exported tables, in order
JOB_COLUMNS = ["model", "dataset", "protocol", "metric", "value", "val_value", "seconds", "source", "seed", "run",
               "ingested_at"]


def _expand(frame: pd.DataFrame, column: str, prefix: str) -> pd.DataFrame:
    """Replace a JSON text column by one text column per key (`prefix` + key), blank where a row lacks it."""
    parsed = pd.DataFrame([json.loads(v) for v in frame[column]], index=frame.index)
    parsed = parsed.map(text_or_none).astype(object).add_prefix(prefix)  # text: one type per column for Parquet
    return pd.concat([frame.drop(columns=column), parsed.reindex(sorted(parsed.columns), axis=1)], axis=1)


def tables(store: Store) -> dict[str, pd.DataFrame]:
    """Every table of the store in the long format of `ingest`, by kind."""
    jobs = store.jobs().rename(columns={"test_value": "value"})
    jobs = _expand(_expand(jobs[[*JOB_COLUMNS, "hparams", "extra"]], "hparams", HP_PREFIX), "extra", EXTRA_PREFIX)
    protocols = pd.concat([_expand(store.protocol_facts(), "extra", EXTRA_PREFIX), store.protocol_examples()],
                          ignore_index=True)  # a row with a dataset: the protocol's examples on that dataset
    frames = {"jobs": jobs,
              "models": _expand(store.model_features(), "extra", EXTRA_PREFIX),
              "datasets": _expand(store.dataset_features(), "extra", EXTRA_PREFIX),
              "scores": store.scores().drop(columns="repeat"),
              "protocols": protocols,
              "dataset_aliases": store.aliases()}
    return {kind: frames[kind] for kind in KINDS}


def export(store: Store, folder: str | Path, to: str = "csv", overwrite: bool = False) -> list[Path]:
    """Write jobs, models, datasets, scores, protocols and dataset_aliases as `<kind>.csv` or `<kind>.parquet`
    (`history ingest --kind KIND` reads the first five back, `history alias --file` the aliases); the paths.

    The files are built in a hidden folder and moved into place, so an interrupted export leaves the earlier one
    intact; a re-run replaces the files an earlier export wrote and keeps every other file in `folder`. A file
    of an exported name that no export wrote is refused unless `overwrite`; the store's own file never is
    replaced.
    """
    folder = Path(folder)
    names = [f"{kind}.{to}" for kind in KINDS]
    database = sqlite_path(store.url)
    protect = [database.with_name(database.name + end) for end in ("", "-wal", "-shm", "-journal")] \
        if database else []
    check_output_files(folder, "history export", names, overwrite, protect)  # before reading the store
    frames = tables(store)

    def build(part: Path) -> None:
        for kind, frame in frames.items():
            path = part / f"{kind}.{to}"
            if to == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)

    write_output_folder(folder, build, kind="history export", overwrite=overwrite, protect=protect)
    return [folder / name for name in names]


def stats(store: Store) -> dict[str, pd.DataFrame]:
    """Counts per table; per protocol: its history, jobs, pairs, models, datasets, and the pairs and datasets with
    stored scores (which scores); per dataset; the dataset aliases; the protocols' facts."""
    counts = pd.DataFrame(list(store.counts().items()), columns=["table", "rows"])
    jobs = store.jobs()[["protocol", "dataset", "model"]]
    pairs = jobs.drop_duplicates()
    per_protocol = jobs.groupby("protocol").agg(jobs=("model", "size"), models=("model", "nunique"),
                                                datasets=("dataset", "nunique"))
    per_protocol["pairs"] = pairs.groupby("protocol").size()
    scored = pairs.merge(store.scores()[["model", "dataset", "score"]].drop_duplicates(), on=["model", "dataset"])
    per_protocol["scored_pairs"] = scored.drop_duplicates(["protocol", "model", "dataset"]).groupby("protocol").size()
    per_protocol["scored_datasets"] = scored.groupby("protocol")["dataset"].nunique()
    per_protocol["scores"] = scored.groupby("protocol")["score"].agg(lambda names: ",".join(sorted(set(names))))
    per_protocol = per_protocol.fillna({"scored_pairs": 0, "scored_datasets": 0, "scores": "-"})
    per_protocol = per_protocol.astype({"scored_pairs": int, "scored_datasets": int})
    facts = store.protocol_facts().drop(columns=["source", "extra"]).set_index("protocol")
    per_protocol = per_protocol.join(facts[["history"]]).fillna({"history": "-"})
    per_dataset = jobs.groupby("dataset").agg(jobs=("model", "size"), models=("model", "nunique"),
                                              protocols=("protocol", "nunique"))
    return {"tables": counts,
            "per protocol": per_protocol[["history", "jobs", "pairs", "models", "datasets", "scored_pairs",
                                          "scored_datasets", "scores"]].reset_index(),
            "per dataset": per_dataset.reset_index(),
            "dataset aliases": store.aliases(),
            "protocol facts": facts.dropna(axis=1, how="all").reset_index()}
