"""The record of auditors' queries (append-only), and an index for searches by URL prefix.

0003 indexes (submitted_at, referral_id), the search order, and decided_at; its canonical_url
index serves exact matches, but LIKE 'prefix%' needs text_pattern_ops unless the collation is C.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "outcomes"

REFUSE = f"""
CREATE FUNCTION {SCHEMA}.auditor_queries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'auditor_queries is append-only';
END $$
"""
TRIGGERS = {
    "auditor_queries_no_change": "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW",
    "auditor_queries_no_truncate": "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT",
}


def upgrade() -> None:
    op.create_table(
        "auditor_queries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("route", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("rows", sa.Integer, nullable=True),
        schema=SCHEMA,
    )
    op.create_index("auditor_queries_actor", "auditor_queries", ["actor", "id"], schema=SCHEMA)
    op.execute(REFUSE)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when.format(t=f'{SCHEMA}.auditor_queries')} "
                   f"EXECUTE FUNCTION {SCHEMA}.auditor_queries_refuse_change()")
    op.create_index("referrals_canonical_url_prefix", "referrals", ["canonical_url"], schema=SCHEMA,
                    postgresql_ops={"canonical_url": "text_pattern_ops"})


def downgrade() -> None:
    op.drop_index("referrals_canonical_url_prefix", "referrals", schema=SCHEMA)
    op.drop_table("auditor_queries", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.auditor_queries_refuse_change()")
