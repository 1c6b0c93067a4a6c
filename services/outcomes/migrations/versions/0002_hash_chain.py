"""Hash-chain the audit trail, keep its head, and refuse UPDATE, DELETE and TRUNCATE on it.

Existing rows are chained in position order (services/outcomes/chain.py). Their positions came
from an identity sequence, which leaves gaps (rolled-back and replayed inserts); the chain needs
positions 1..N without gaps, so they are renumbered first, in the same order.

Revision ID: 0002
Revises: 0001
"""
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB, UUID

from services.outcomes import chain

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "outcomes"
BATCH = 1000
log = logging.getLogger("alembic.runtime.migration")

events = sa.table(
    "audit_events",
    *(sa.column(name, UUID(as_uuid=True)) for name in ("event_id", "referral_id")),
    sa.column("position", sa.BigInteger), sa.column("event_type", sa.String), sa.column("actor", sa.String),
    sa.column("occurred_at", sa.DateTime(timezone=True)), sa.column("source", sa.String),
    sa.column("schema_version", sa.BigInteger), sa.column("data", JSONB),
    sa.column("prev_hash", BYTEA), sa.column("hash", BYTEA),
    schema=SCHEMA,
)

REFUSE = f"""
CREATE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING DETAIL = format('%s on %I.%I refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
              HINT = 'the audit trail is hash-chained; record a new event instead';
END $$;
"""
# The head moves forward only, and only to a row of the chain; it is never deleted.
HEAD_MOVES = f"""
CREATE FUNCTION {SCHEMA}.audit_head_moves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.position < OLD.position
       OR (NEW.position = OLD.position AND NEW.hash IS DISTINCT FROM OLD.hash)
       OR (NEW.position > 0 AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.audit_events e
                                           WHERE e.position = NEW.position AND e.hash = NEW.hash)) THEN
        RAISE EXCEPTION 'audit_head moves forward only, to a row of the chain'
            USING DETAIL = format('from %s to %s', OLD.position, NEW.position);
    END IF;
    RETURN NEW;
END $$;
"""
TRIGGERS = (
    f"CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON {SCHEMA}.audit_events "
    f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()",
    f"CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON {SCHEMA}.audit_events "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()",
    f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON {SCHEMA}.audit_head "
    f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()",
    f"CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON {SCHEMA}.audit_head "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()",
    f"CREATE TRIGGER audit_head_forward BEFORE UPDATE ON {SCHEMA}.audit_head "
    f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.audit_head_moves()",
)


def renumber(bind) -> None:
    """Close the identity sequence's gaps, keeping the order (negate first: no key collides)."""
    count, last = bind.execute(sa.text(f"SELECT count(*), coalesce(max(position), 0) FROM {SCHEMA}.audit_events")).one()
    if count == last:
        return
    log.warning("renumbering %d audit events to positions 1..%d (the last was %d), in the same order",
                count, count, last)
    bind.execute(sa.text(f"UPDATE {SCHEMA}.audit_events SET position = -position"))
    bind.execute(sa.text(f"""
        UPDATE {SCHEMA}.audit_events e SET position = n.new
        FROM (SELECT position, row_number() OVER (ORDER BY position DESC) AS new
              FROM {SCHEMA}.audit_events) n
        WHERE e.position = n.position"""))


def backfill(bind) -> chain.Checkpoint:
    """prev_hash and hash of every existing row, in position order, a batch at a time; the head."""
    head = chain.Checkpoint(0, chain.GENESIS)
    while True:
        rows = bind.execute(sa.select(events).where(events.c.position > head.position)
                            .order_by(events.c.position).limit(BATCH)).mappings().all()
        if not rows:
            return head
        linked = chain.extend(head, rows)
        bind.execute(events.update().where(events.c.position == sa.bindparam("at"))
                     .values(prev_hash=sa.bindparam("prev"), hash=sa.bindparam("new")),
                     [{"at": r["position"], "prev": r["prev_hash"], "new": r["hash"]} for r in linked])
        head = chain.Checkpoint(linked[-1]["position"], linked[-1]["hash"])


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("audit_events", sa.Column("prev_hash", BYTEA), schema=SCHEMA)
    op.add_column("audit_events", sa.Column("hash", BYTEA), schema=SCHEMA)
    renumber(bind)
    head = backfill(bind)
    for column in ("prev_hash", "hash"):
        op.alter_column("audit_events", column, nullable=False, schema=SCHEMA)
        op.create_check_constraint(f"audit_events_{column}_sha256", "audit_events",
                                   sa.text(f"octet_length({column}) = 32"), schema=SCHEMA)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.SmallInteger, sa.CheckConstraint("id = 1", name="audit_head_one_row"), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("hash", BYTEA, nullable=False),
        schema=SCHEMA,
    )
    op.execute(sa.text(f"INSERT INTO {SCHEMA}.audit_head (id, position, hash) VALUES (1, :position, :hash)")
               .bindparams(position=head.position, hash=head.hash))
    for statement in (REFUSE, HEAD_MOVES, *TRIGGERS):
        op.execute(statement)
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {SCHEMA}.audit_events FROM PUBLIC")
    log.info("audit trail chained: %d events, head %s", head.position, head.hash.hex())


def downgrade() -> None:
    for trigger, table in (("audit_events_no_change", "audit_events"), ("audit_events_no_truncate", "audit_events")):
        op.execute(f"DROP TRIGGER {trigger} ON {SCHEMA}.{table}")
    op.drop_table("audit_head", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.refuse_change(), {SCHEMA}.audit_head_moves()")
    op.drop_column("audit_events", "hash", schema=SCHEMA)
    op.drop_column("audit_events", "prev_hash", schema=SCHEMA)
