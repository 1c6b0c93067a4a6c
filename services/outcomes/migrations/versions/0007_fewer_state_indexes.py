"""Fewer indexes on outcomes.referrals: each one is written at every change of a referral's state.

Dropped: referrals_page (first_recorded_at, referral_id), an order no query uses since searches
are ordered by (submitted_at, referral_id); referrals_submitted_at, whose every use
referrals_search (submitted_at, referral_id) serves; referrals_canonical_url, as
referrals_canonical_url_prefix (text_pattern_ops) serves equality as well as prefixes.
Partial: outcome, reason and decided_at are null until a decision, and every query on them
(equality, IN, a period) holds only for rows where they are not, so rows not decided yet are left
out of their indexes.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "outcomes"
DROPPED = {"referrals_page": ["first_recorded_at", "referral_id"], "referrals_submitted_at": ["submitted_at"],
           "referrals_canonical_url": ["canonical_url"]}
PARTIAL = ("outcome", "reason", "decided_at")


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, "referrals", schema=SCHEMA)
    for column in PARTIAL:
        op.drop_index(f"referrals_{column}", "referrals", schema=SCHEMA)
        op.create_index(f"referrals_{column}", "referrals", [column], schema=SCHEMA,
                        postgresql_where=sa.text(f"{column} IS NOT NULL"))


def downgrade() -> None:
    for column in PARTIAL:
        op.drop_index(f"referrals_{column}", "referrals", schema=SCHEMA)
        op.create_index(f"referrals_{column}", "referrals", [column], schema=SCHEMA)
    for name, columns in DROPPED.items():
        op.create_index(name, "referrals", columns, schema=SCHEMA)
