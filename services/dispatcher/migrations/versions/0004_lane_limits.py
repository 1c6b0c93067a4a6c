"""What every dispatcher process shares about a lane: its platform's token bucket (tokens left at
updated_at), a Retry-After the platform gave (blocked_until) and its circuit (open until
circuit_until). One row per lane, keyed by the adapter's slug; services/dispatcher/limits.py.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "dispatcher"
now = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "lane_limits",
        sa.Column("lane", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
        sa.Column("circuit", sa.String(16), nullable=False, server_default="closed"),
        sa.Column("circuit_until", sa.DateTime(timezone=True)),
        sa.Column("circuit_changed_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("lane_limits", schema=SCHEMA)
