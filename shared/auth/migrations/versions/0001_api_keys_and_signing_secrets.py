"""API keys (stored as hashes) and agencies' Kafka signing secrets.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "auth"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("agency", sa.String(200)),
        sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.CheckConstraint("role IN ('agency', 'auditor', 'oversight', 'operator')", name="api_keys_role"),
        sa.CheckConstraint("(role = 'agency') = (agency IS NOT NULL)", name="api_keys_agency_iff_agency_role"),
        schema=SCHEMA,
    )
    op.create_table(
        "signing_secrets",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("signing_secrets_active", "signing_secrets", ["agency"], schema=SCHEMA,
                    postgresql_where=sa.text("retired_at IS NULL"))


def downgrade() -> None:
    op.drop_table("signing_secrets", schema=SCHEMA)
    op.drop_table("api_keys", schema=SCHEMA)
