"""Outbox rows are kept until every reader of their topic confirmed them, and re-sent until then.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    add = lambda column: op.add_column("outbox", column, schema=SCHEMA)  # noqa: E731
    add(sa.Column("event_id", UUID(as_uuid=True)))
    add(sa.Column("awaiting", sa.ARRAY(sa.String(32)), nullable=False, server_default="{}"))
    add(sa.Column("published_at", sa.DateTime(timezone=True)))
    add(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()))
    add(sa.Column("redrives", sa.Integer, nullable=False, server_default="0"))
    # Rows queued before: not sent yet, read by the dispatcher and outcomes.
    op.execute(f"UPDATE {SCHEMA}.outbox SET event_id = CAST(headers->>'ce_id' AS UUID), "
               f"awaiting = ARRAY['dispatcher', 'outcomes']")
    op.alter_column("outbox", "event_id", nullable=False, schema=SCHEMA)
    op.create_index("outbox_event_id", "outbox", ["event_id"], schema=SCHEMA)
    op.create_index("outbox_next_attempt_at", "outbox", ["next_attempt_at"], schema=SCHEMA)


def downgrade() -> None:
    for index in ("outbox_event_id", "outbox_next_attempt_at"):
        op.drop_index(index, "outbox", schema=SCHEMA)
    for column in ("event_id", "awaiting", "published_at", "next_attempt_at", "redrives"):
        op.drop_column("outbox", column, schema=SCHEMA)
