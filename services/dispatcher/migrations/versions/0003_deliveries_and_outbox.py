"""Every delivery the dispatcher owes (reports and answers to forward) and the outbox of its events,
so that its next step is in Postgres and not only on Kafka.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "dispatcher"
now = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("referral_id", UUID(as_uuid=True), nullable=False),
        sa.Column("dispatch", sa.Integer, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(200)),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("key", sa.LargeBinary),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redrives", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=SCHEMA,
    )
    op.create_index("deliveries_due", "deliveries", ["due_at"], schema=SCHEMA, postgresql_where=sa.text("state = 'due'"))
    op.create_index("deliveries_ticket", "deliveries", ["platform", "ticket_id"], schema=SCHEMA)
    op.create_index("deliveries_referral", "deliveries", ["referral_id"], schema=SCHEMA)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("topic", sa.String, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("awaiting", sa.ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("redrives", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=SCHEMA,
    )
    op.create_index("outbox_event_id", "outbox", ["event_id"], schema=SCHEMA)
    op.create_index("outbox_next_attempt_at", "outbox", ["next_attempt_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("deliveries", schema=SCHEMA)
