"""Record what proved each actor's identity: the credential of every audit event and auditor query.

Null on rows recorded before identities existed; the hash chain covers a row's credential only
when it has one, so those rows' hashes are unchanged.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
SCHEMA = "outcomes"


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("credential", sa.String(300)), schema=SCHEMA)
    op.add_column("auditor_queries", sa.Column("credential", sa.Text), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("auditor_queries", "credential", schema=SCHEMA)
    op.drop_column("audit_events", "credential", schema=SCHEMA)
