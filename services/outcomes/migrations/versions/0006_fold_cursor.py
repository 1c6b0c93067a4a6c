"""Keep in each referral's state the last event folded into it, so new events fold onto it.

With last_event_at, last_event_id and last_event_type place that event in the order events are
folded in (time, event type, id). Null on rows folded before this migration: the next event of
such a referral projects its whole history again, and from then on it folds.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
SCHEMA = "outcomes"


def upgrade() -> None:
    op.add_column("referrals", sa.Column("last_event_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.add_column("referrals", sa.Column("last_event_type", sa.String(64)), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("referrals", "last_event_type", schema=SCHEMA)
    op.drop_column("referrals", "last_event_id", schema=SCHEMA)
