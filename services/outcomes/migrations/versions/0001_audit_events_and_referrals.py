"""The audit trail (append-only) and each referral's current state.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "outcomes"
TEXT_STATE = ("agency", "platform", "category", "url", "canonical_url", "priority", "case_reference",
              "status", "ticket_id", "outcome", "reason", "failure_reason")
TIME_STATE = ("submitted_at", "dispatched_at", "decided_at", "last_event_at")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("position", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("referral_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("schema_version", sa.BigInteger, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("audit_events_referral", "audit_events", ["referral_id", "occurred_at"], schema=SCHEMA)
    op.create_table(
        "referrals",
        sa.Column("referral_id", UUID(as_uuid=True), primary_key=True),
        *(sa.Column(c, sa.String) for c in TEXT_STATE),
        *(sa.Column(c, sa.DateTime(timezone=True)) for c in TIME_STATE),
        sa.Column("first_recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("referrals_page", "referrals", ["first_recorded_at", "referral_id"], schema=SCHEMA)
    for column in ("platform", "status", "agency"):
        op.create_index(f"referrals_{column}", "referrals", [column], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("referrals", schema=SCHEMA)
    op.drop_table("audit_events", schema=SCHEMA)
