"""The whole lifecycle in each referral's state: more timestamps, flags, transitions, anomalies.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "outcomes"


def upgrade() -> None:
    for name in ("acknowledged_at", "information_requested_at", "closed_at", "deadline"):
        op.add_column("referrals", sa.Column(name, sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("referrals", sa.Column("overdue", sa.Boolean, nullable=False, server_default=sa.false()),
                  schema=SCHEMA)
    op.add_column("referrals", sa.Column("dispatches", sa.Integer, nullable=False, server_default="0"),
                  schema=SCHEMA)
    op.add_column("referrals", sa.Column("reachable", sa.Boolean), schema=SCHEMA)
    for name in ("transitions", "anomalies"):
        op.add_column("referrals", sa.Column(name, JSONB, nullable=False, server_default="[]"), schema=SCHEMA)
    for column in ("category", "outcome", "reason", "submitted_at", "decided_at"):
        op.create_index(f"referrals_{column}", "referrals", [column], schema=SCHEMA)
    op.create_index("referrals_search", "referrals", ["submitted_at", "referral_id"], schema=SCHEMA)
    op.create_index("referrals_canonical_url", "referrals", ["canonical_url"], schema=SCHEMA)


def downgrade() -> None:
    for name in ("acknowledged_at", "information_requested_at", "closed_at", "deadline", "overdue", "dispatches",
                 "reachable", "transitions", "anomalies"):
        op.drop_column("referrals", name, schema=SCHEMA)
