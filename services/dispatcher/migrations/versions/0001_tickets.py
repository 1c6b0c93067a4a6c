"""Platform tickets: which referral each is for, and when to poll it next.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "dispatcher"


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(200), primary_key=True),
        sa.Column("referral_id", UUID(as_uuid=True), nullable=False),
        sa.Column("adapter", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("polled", sa.Boolean, nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True)),
        sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("tickets_due", "tickets", ["next_poll_at"], schema=SCHEMA,
                    postgresql_where=sa.text("polled AND status <> 'decided'"))
    op.create_index("tickets_referral", "tickets", ["referral_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("tickets", schema=SCHEMA)
