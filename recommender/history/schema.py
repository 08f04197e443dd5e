"""The relational schema of the training-history store (SQLAlchemy Core tables).

Hyper-parameters and features beyond the fixed columns live in JSON text columns (`hparams`, `extra`),
so a new hyper-parameter or a new model feature needs no migration of old rows.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint

# Bump when a table changes shape; stored in `meta` so that an old file is recognised, never misread.
SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One fine-tuning (or evaluation) run. Natural key: where it was read from, what ran, with which
# hyper-parameters, and `run` (a run id, or the ordinal of a repeat of identical settings in one file).
JOB_KEY = ("source", "model", "dataset", "protocol", "metric", "hparams", "run")
jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(400), nullable=False),
    Column("model", String(300), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("protocol", String(100), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("hparams", String(1000), nullable=False),
    Column("run", String(200), nullable=False),
    Column("test_value", Float, nullable=False),
    Column("val_value", Float),
    Column("seconds", Float),
    Column("extra", Text, nullable=False),
    Column("ingested_at", String(40), nullable=False),
    UniqueConstraint(*JOB_KEY, name="jobs_natural_key"),
)

MODEL_FEATURES = ("family", "pretrain_dataset", "input_size", "params_m", "gmacs", "imagenet_top1")
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

DATASET_FEATURES = ("examples", "classes", "modality", "group")
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

SCORE_KEY = ("source", "model", "dataset", "score", "run")
scores = Table(
    "scores", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(400), nullable=False),
    Column("model", String(300), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("score", String(100), nullable=False),
    Column("run", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("seconds", Float),
    Column("ingested_at", String(40), nullable=False),
    UniqueConstraint(*SCORE_KEY, name="scores_natural_key"),
)

# The fields a feature table holds (besides its id, `source` and `extra`), by kind.
FEATURES = {"models": MODEL_FEATURES, "datasets": DATASET_FEATURES}
ID_COLUMN = {"models": "model", "datasets": "dataset"}
