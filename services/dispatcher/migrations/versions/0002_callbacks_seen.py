"""Callbacks accepted, remembered while a replay of them would not yet be stale, so that every
dispatcher instance refuses a replay.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "dispatcher"


def upgrade() -> None:
    op.create_table(
        "callbacks_seen",
        sa.Column("adapter", sa.String(64), primary_key=True),
        sa.Column("replay_key", sa.String(300), primary_key=True),
        sa.Column("remember_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("callbacks_seen_until", "callbacks_seen", ["remember_until"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("callbacks_seen", schema=SCHEMA)
