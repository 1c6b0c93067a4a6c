"""Accepted referrals (for de-duplication) and the transactional outbox.

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
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("referral_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("canonical_url", sa.String, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("agency", "idempotency_key", name="referrals_agency_idempotency_key"),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.String, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("referrals", schema=SCHEMA)
