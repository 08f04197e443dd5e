"""Schema version 3: dataset aliases, protocol facts and per-dataset training examples under a protocol.

Revision ID: schema3
Revises: schema2
Only tables are added: the rows of a version-2 store are kept as they are.
"""

import sqlalchemy as sa
from alembic import op

revision = "schema3"
down_revision = "schema2"
branch_labels = None
depends_on = None

META = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))


def upgrade() -> None:
    """Add the alias and protocol tables and record version 3."""
    op.create_table(
        "dataset_aliases",
        sa.Column("alias", sa.String(200), primary_key=True),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
    )
    op.create_table(
        "protocols",
        sa.Column("protocol", sa.String(100), primary_key=True),
        sa.Column("history", sa.String(200)),
        sa.Column("examples", sa.Float),
        sa.Column("train_fraction", sa.Float),
        sa.Column("epochs", sa.Float),
        sa.Column("lr_min", sa.Float),
        sa.Column("lr_max", sa.Float),
        sa.Column("optimizer", sa.String(100)),
        sa.Column("peft", sa.String(50)),
        sa.Column("lora_r", sa.Float),
        sa.Column("split", sa.String(100)),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
    )
    op.create_table(
        "protocol_datasets",
        sa.Column("protocol", sa.String(100), primary_key=True),
        sa.Column("dataset", sa.String(200), primary_key=True),
        sa.Column("examples", sa.Float, nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
    )
    op.execute(META.update().where(META.c.key == "schema_version").values(value="3"))


def downgrade() -> None:
    """Drop the version-3 tables (their rows are lost) and record version 2."""
    for table in ("protocol_datasets", "protocols", "dataset_aliases"):
        op.drop_table(table)
    op.execute(META.update().where(META.c.key == "schema_version").values(value="2"))
