"""The relational schema of the training-history store (SQLAlchemy Core tables).

Hyper-parameters and features beyond the fixed columns live in JSON text columns (`hparams`, `extra`),
so a new hyper-parameter or a new model feature needs no migration of old rows.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

# schema_version and the store's revision (recommender.history.version)
meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One fine-tuning (or evaluation) run. `key` is its identity: a hash of (run id, metric) when the source has a
# run id, else of (model, dataset, protocol, metric, hparams, seed, repeat), `repeat` numbering the runs of
# identical settings by value. `source` (where it was first read from) is provenance, not identity
# (records.JOB_IDENTITY).
jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("source", String(400), nullable=False),
    Column("model", String(300), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("protocol", String(100), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("hparams", String(1000), nullable=False),
    Column("seed", String(100)),
    Column("run", String(200)),
    Column("repeat", Integer, nullable=False),
    Column("test_value", Float, nullable=False),
    Column("val_value", Float),
    Column("seconds", Float),
    Column("extra", Text, nullable=False),
    Column("ingested_at", String(40), nullable=False),
)

models = Table(
    "models", metadata,
    Column("model", String(300), primary_key=True),
    Column("family", String(200)),
    Column("pretrain_dataset", String(200)),
    Column("input_size", Float),
    Column("params_m", Float),
    Column("gmacs", Float),
    Column("imagenet_top1", Float),
    Column("source", String(1000), nullable=False),
    Column("extra", Text, nullable=False),
)

datasets = Table(
    "datasets", metadata,
    Column("dataset", String(200), primary_key=True),
    Column("examples", Float),
    Column("classes", Float),
    Column("modality", String(50)),
    Column("group", String(100)),
    Column("source", String(1000), nullable=False),
    Column("extra", Text, nullable=False),
)

# One computed score. `key`: a hash of (source, model, dataset, score, run, repeat); the source is part of a
# score's identity because it names the data the score was computed on (a subsample, the full split)
# (records.SCORE_IDENTITY).
scores = Table(
    "scores", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("source", String(400), nullable=False),
    Column("model", String(300), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("score", String(100), nullable=False),
    Column("run", String(200)),
    Column("repeat", Integer, nullable=False),
    Column("value", Float, nullable=False),
    Column("seconds", Float),
    Column("ingested_at", String(40), nullable=False),
)

# Another name of a dataset: resolved to `dataset` when rows are ingested and when a query names a dataset.
dataset_aliases = Table(
    "dataset_aliases", metadata,
    Column("alias", String(200), primary_key=True),
    Column("dataset", String(200), nullable=False),
    Column("source", String(1000), nullable=False),
)

# What a protocol is, as data: its history, training examples (a count, or a fraction of the full train split),
# epochs, learning-rate range, optimiser, full fine-tuning or PEFT (LoRA rank), the train split used.
protocols = Table(
    "protocols", metadata,
    Column("protocol", String(100), primary_key=True),
    Column("history", String(200)),
    Column("examples", Float),
    Column("train_fraction", Float),
    Column("epochs", Float),
    Column("lr_min", Float),
    Column("lr_max", Float),
    Column("optimizer", String(100)),
    Column("peft", String(50)),
    Column("lora_r", Float),
    Column("split", String(100)),
    Column("source", String(1000), nullable=False),
    Column("extra", Text, nullable=False),
)

# Training examples of one dataset under one protocol, where the protocol's own count varies by dataset.
protocol_datasets = Table(
    "protocol_datasets", metadata,
    Column("protocol", String(100), primary_key=True),
    Column("dataset", String(200), primary_key=True),
    Column("examples", Float, nullable=False),
    Column("source", String(1000), nullable=False),
)
