"""The dispatcher's tables: the deliveries it owes (deliveries.py), the tickets platforms gave us,
for polling and checking callbacks, the callbacks accepted, for refusing their replays, and the
outbox of the events it publishes (shared/outbox.py)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, and_, func, select, text, update
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.dispatcher.deliveries import Deliveries, Executor, deliveries_table
from shared.db import insert_arrays
from shared.outbox import Outbox, outbox_table

SCHEMA = "dispatcher"
metadata = MetaData(schema=SCHEMA)
OPEN, INFORMATION_REQUESTED, DECIDED = "open", "information_requested", "decided"

tickets = Table(
    "tickets", metadata,
    Column("platform", String(32), primary_key=True),
    Column("ticket_id", String(200), primary_key=True),
    Column("referral_id", PgUUID(as_uuid=True), nullable=False),
    Column("adapter", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("polled", Boolean, nullable=False),
    Column("next_poll_at", DateTime(timezone=True)),
    Column("polls", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

callbacks_seen = Table(
    "callbacks_seen", metadata,
    Column("adapter", String(64), primary_key=True),
    Column("replay_key", String(300), primary_key=True),
    Column("remember_until", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
PRUNED_AT_ONCE = 500
DELIVERIES = Deliveries(deliveries_table(metadata))
OUTBOX = Outbox(outbox_table(metadata))


# A lane batch's new tickets, one row each (once); next_poll_at: seconds from now, NULL for tickets not polled.
_OPEN_TICKETS = insert_arrays(tickets, ("platform", "ticket_id", "referral_id", "adapter", "status", "polled",
                                        "next_poll_at"), "ON CONFLICT DO NOTHING",
                              sent_as={"next_poll_at": ("FLOAT", "now() + make_interval(secs => next_poll_at)")})
_REFERRALS_OF = text(
    f"SELECT g.platform, g.ticket_id, t.referral_id FROM unnest(CAST(:platforms AS VARCHAR[]), "
    f"CAST(:tickets AS VARCHAR[])) AS g (platform, ticket_id) JOIN {tickets.fullname} t "
    f"ON t.platform = g.platform AND t.ticket_id = g.ticket_id")
_SET_STATUSES = text(
    f"UPDATE {tickets.fullname} t SET status = g.status, updated_at = now() FROM unnest(CAST(:platforms AS VARCHAR[]), "
    f"CAST(:tickets AS VARCHAR[]), CAST(:statuses AS VARCHAR[])) AS g (platform, ticket_id, status) "
    f"WHERE t.platform = g.platform AND t.ticket_id = g.ticket_id")
_POLLED = text(
    f"UPDATE {tickets.fullname} t SET status = g.status, polls = t.polls + 1, updated_at = now(), "
    f"next_poll_at = now() + make_interval(secs => g.again) FROM unnest(CAST(:platforms AS VARCHAR[]), "
    f"CAST(:tickets AS VARCHAR[]), CAST(:statuses AS VARCHAR[]), CAST(:again AS FLOAT[])) "
    f"AS g (platform, ticket_id, status, again) WHERE t.platform = g.platform AND t.ticket_id = g.ticket_id")
_FIRST_ACCEPTANCES = insert_arrays(callbacks_seen, ("adapter", "replay_key", "remember_until"),
                                   "ON CONFLICT DO NOTHING RETURNING adapter, replay_key")
_PRUNE_CALLBACKS = text(
    f"DELETE FROM {callbacks_seen.fullname} WHERE (adapter, replay_key) IN (SELECT adapter, replay_key "
    f"FROM {callbacks_seen.fullname} WHERE remember_until < now() LIMIT {PRUNED_AT_ONCE} FOR UPDATE SKIP LOCKED)")


@dataclass(frozen=True)
class NewTicket:
    """A ticket a platform gave for a report; poll_after_s is set for platforms whose answers we must fetch."""

    platform: str
    ticket_id: str
    referral_id: UUID
    adapter: str
    poll_after_s: float | None


async def open_tickets(conn: Executor, new: Sequence[NewTicket]) -> None:
    """Remember tickets (each once), in one statement."""
    if new:
        await conn.execute(_OPEN_TICKETS, {
            "platform": [t.platform for t in new], "ticket_id": [t.ticket_id for t in new],
            "referral_id": [t.referral_id for t in new], "adapter": [t.adapter for t in new],
            "status": [OPEN] * len(new), "polled": [t.poll_after_s is not None for t in new],
            "next_poll_at": [t.poll_after_s or None for t in new]})


async def open_ticket(conn: Executor, platform: str, ticket_id: str, referral_id: UUID, adapter: str,
                      poll_after_s: float | None) -> None:
    """Remember one ticket (once)."""
    await open_tickets(conn, [NewTicket(platform, ticket_id, referral_id, adapter, poll_after_s)])


async def referrals_of(conn: Executor, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], UUID]:
    """The referral of each ticket we hold, by (platform, ticket id); unknown tickets are left out."""
    if not keys:
        return {}
    rows = await conn.execute(_REFERRALS_OF, {"platforms": [k[0] for k in keys], "tickets": [k[1] for k in keys]})
    return {(r.platform, r.ticket_id): r.referral_id for r in rows}


async def referral_of(conn: Executor, platform: str, ticket_id: str) -> UUID | None:
    stmt = select(tickets.c.referral_id).where(and_(tickets.c.platform == platform,
                                                    tickets.c.ticket_id == ticket_id))
    return (await conn.execute(stmt)).scalar()


async def ticket_to_answer(conn: Executor, referral_id: UUID):
    """The ticket an answer for this referral goes to: the latest that asked for information, else the latest."""
    stmt = (select(tickets).where(tickets.c.referral_id == referral_id)
            .order_by((tickets.c.status == INFORMATION_REQUESTED).desc(), tickets.c.created_at.desc()).limit(1))
    return (await conn.execute(stmt)).first()


async def platform_of(conn: Executor, referral_id: UUID) -> str | None:
    """The platform a referral was reported to, from its deliveries, or from its tickets (reported
    before deliveries were kept)."""
    if platform := await DELIVERIES.platform_of(conn, referral_id):
        return platform
    stmt = (select(tickets.c.platform).where(tickets.c.referral_id == referral_id)
            .order_by(tickets.c.created_at.desc()).limit(1))
    return (await conn.execute(stmt)).scalar()


async def undecided(conn: Executor, older_than: datetime) -> list:
    """Tickets without a decision since before older_than, per platform: count, oldest, polled or not."""
    stmt = (select(tickets.c.platform, tickets.c.polled, func.count().label("count"),
                   func.min(tickets.c.created_at).label("oldest"), func.sum(tickets.c.polls).label("polls"))
            .where(and_(tickets.c.status != DECIDED, tickets.c.created_at < older_than))
            .group_by(tickets.c.platform, tickets.c.polled).order_by(tickets.c.platform))
    return list(await conn.execute(stmt))


async def set_statuses(conn: Executor, statuses: Mapping[tuple[str, str], str]) -> None:
    """Set tickets' statuses, by (platform, ticket id), in one statement."""
    if statuses:
        keys = list(statuses)
        await conn.execute(_SET_STATUSES, {"platforms": [k[0] for k in keys], "tickets": [k[1] for k in keys],
                                           "statuses": [statuses[k] for k in keys]})


async def lease_due(conn: Executor, limit: int, lease_s: float) -> list:
    """Take up to `limit` polled tickets that are due and undecided (skipping rows others hold), and
    put their next poll lease_s ahead: the polls are made outside any transaction, and a poller
    that dies meanwhile leaves them to be polled again then."""
    due = (select(tickets.c.platform, tickets.c.ticket_id)
           .where(and_(tickets.c.polled, tickets.c.status != DECIDED, tickets.c.next_poll_at <= func.now()))
           .order_by(tickets.c.next_poll_at).limit(limit).with_for_update(skip_locked=True)).subquery()
    stmt = (update(tickets).where(and_(tickets.c.platform == due.c.platform, tickets.c.ticket_id == due.c.ticket_id))
            .values(next_poll_at=func.now() + timedelta(seconds=lease_s)).returning(*tickets.c))
    return list(await conn.execute(stmt))


async def polled(conn: Executor, polls: Mapping[tuple[str, str], tuple[str, float]]) -> None:
    """Note polls made, by (platform, ticket id): the status after each, and when to poll again (seconds)."""
    if polls:
        keys = list(polls)
        await conn.execute(_POLLED, {"platforms": [k[0] for k in keys], "tickets": [k[1] for k in keys],
                                     "statuses": [polls[k][0] for k in keys], "again": [polls[k][1] for k in keys]})


async def first_acceptances(conn: Executor, callbacks: Sequence[tuple[str, str, datetime]]) -> set[tuple[str, str]]:
    """Note callbacks, as (adapter, replay key, remembered until), as accepted; those that were not before
    (the others are replays). Each row stays locked until the transaction ends: an instance taking the
    same callback at the same time waits, and then finds it taken (or free again, after a rollback)."""
    await conn.execute(_PRUNE_CALLBACKS)  # forget callbacks that would now be refused as stale anyway
    if not callbacks:
        return set()
    rows = await conn.execute(_FIRST_ACCEPTANCES, {"adapter": [c[0] for c in callbacks],
                                                   "replay_key": [c[1] for c in callbacks],
                                                   "remember_until": [c[2] for c in callbacks]})
    return {(r.adapter, r.replay_key) for r in rows}


async def first_acceptance(conn: Executor, adapter: str, replay_key: str, until: datetime) -> bool:
    """Note one callback as accepted, remembered until `until`; False if it already was (a replay)."""
    return bool(await first_acceptances(conn, [(adapter, replay_key, until)]))
