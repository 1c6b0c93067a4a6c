"""Keep each accepted submission (what was asked) and count its dispatches (escalations, appeals).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.add_column("referrals", sa.Column("submission", JSONB), schema=SCHEMA)
    op.add_column("referrals", sa.Column("dispatches", sa.Integer, nullable=False, server_default="1"),
                  schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("referrals", "dispatches", schema=SCHEMA)
    op.drop_column("referrals", "submission", schema=SCHEMA)
