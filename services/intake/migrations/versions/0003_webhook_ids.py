"""Remember the webhook-id of each accepted signed record on referrals.inbound, to refuse replays.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "intake"


def upgrade() -> None:
    op.create_table(
        "webhook_ids",
        sa.Column("agency", sa.String(200), primary_key=True),
        sa.Column("webhook_id", sa.String(200), primary_key=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("webhook_ids_signed_at", "webhook_ids", ["signed_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("webhook_ids", schema=SCHEMA)
