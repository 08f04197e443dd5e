"""Schema version 2, the baseline: jobs and scores keyed by a hash of their content; model and dataset features.

Revision ID: schema2
Revises:
The tables are written out as they were at version 2 (never imported from `schema`, which moves on).
"""

import sqlalchemy as sa
from alembic import op

revision = "schema2"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the version-2 tables and record the version."""
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(400), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("protocol", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("hparams", sa.String(1000), nullable=False),
        sa.Column("seed", sa.String(100)),
        sa.Column("run", sa.String(200)),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("test_value", sa.Float, nullable=False),
        sa.Column("val_value", sa.Float),
        sa.Column("seconds", sa.Float),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("model", sa.String(300), primary_key=True),
        sa.Column("family", sa.String(200)),
        sa.Column("pretrain_dataset", sa.String(200)),
        sa.Column("input_size", sa.Float),
        sa.Column("params_m", sa.Float),
        sa.Column("gmacs", sa.Float),
        sa.Column("imagenet_top1", sa.Float),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("dataset", sa.String(200), primary_key=True),
        sa.Column("examples", sa.Float),
        sa.Column("classes", sa.Float),
        sa.Column("modality", sa.String(50)),
        sa.Column("group", sa.String(100)),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
    )
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(400), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("score", sa.String(100), nullable=False),
        sa.Column("run", sa.String(200)),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float),
        sa.Column("ingested_at", sa.String(40), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "2"}])


def downgrade() -> None:
    """Drop every table of the store."""
    for table in ("scores", "datasets", "models", "jobs", "meta"):
        op.drop_table(table)
