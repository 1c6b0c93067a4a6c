"""The dispatcher's tables: the deliveries it owes (deliveries.py), the tickets platforms gave us,
for polling and checking callbacks, the callbacks accepted, for refusing their replays, and the
outbox of the events it publishes (shared/outbox.py)."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, and_, delete, func,
                        select, tuple_, update)
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatcher.deliveries import Deliveries, deliveries_table
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


async def open_ticket(session: AsyncSession, platform: str, ticket_id: str, referral_id: UUID,
                      adapter: str, poll_after_s: float | None) -> None:
    """Remember a ticket (once); poll_after_s is set for platforms whose answers we must fetch."""
    next_poll = datetime.now(UTC) + timedelta(seconds=poll_after_s) if poll_after_s else None
    await session.execute(insert(tickets).values(
        platform=platform, ticket_id=ticket_id, referral_id=referral_id, adapter=adapter, status=OPEN,
        polled=poll_after_s is not None, next_poll_at=next_poll,
    ).on_conflict_do_nothing())


async def referral_of(session: AsyncSession, platform: str, ticket_id: str) -> UUID | None:
    stmt = select(tickets.c.referral_id).where(and_(tickets.c.platform == platform,
                                                    tickets.c.ticket_id == ticket_id))
    return (await session.execute(stmt)).scalar()


async def ticket_to_answer(session: AsyncSession, referral_id: UUID):
    """The ticket an answer for this referral goes to: the latest that asked for information, else the latest."""
    stmt = (select(tickets).where(tickets.c.referral_id == referral_id)
            .order_by((tickets.c.status == INFORMATION_REQUESTED).desc(), tickets.c.created_at.desc()).limit(1))
    return (await session.execute(stmt)).first()


async def platform_of(session: AsyncSession, referral_id: UUID) -> str | None:
    """The platform a referral was reported to, from its deliveries, or from its tickets (reported
    before deliveries were kept)."""
    if platform := await DELIVERIES.platform_of(session, referral_id):
        return platform
    stmt = (select(tickets.c.platform).where(tickets.c.referral_id == referral_id)
            .order_by(tickets.c.created_at.desc()).limit(1))
    return (await session.execute(stmt)).scalar()


async def undecided(session: AsyncSession, older_than: datetime) -> list:
    """Tickets without a decision since before older_than, per platform: count, oldest, polled or not."""
    stmt = (select(tickets.c.platform, tickets.c.polled, func.count().label("count"),
                   func.min(tickets.c.created_at).label("oldest"), func.sum(tickets.c.polls).label("polls"))
            .where(and_(tickets.c.status != DECIDED, tickets.c.created_at < older_than))
            .group_by(tickets.c.platform, tickets.c.polled).order_by(tickets.c.platform))
    return list(await session.execute(stmt))


async def set_status(session: AsyncSession, platform: str, ticket_id: str, status: str) -> None:
    await session.execute(update(tickets).where(and_(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id))
                          .values(status=status, updated_at=func.now()))


async def lease_due(session: AsyncSession, limit: int, lease_s: float) -> list:
    """Take up to `limit` polled tickets that are due and undecided (skipping rows others hold), and
    put their next poll lease_s ahead: the polls are made outside any transaction, and a poller
    that dies meanwhile leaves them to be polled again then."""
    due = (select(tickets.c.platform, tickets.c.ticket_id)
           .where(and_(tickets.c.polled, tickets.c.status != DECIDED, tickets.c.next_poll_at <= func.now()))
           .order_by(tickets.c.next_poll_at).limit(limit).with_for_update(skip_locked=True)).subquery()
    stmt = (update(tickets).where(and_(tickets.c.platform == due.c.platform, tickets.c.ticket_id == due.c.ticket_id))
            .values(next_poll_at=func.now() + timedelta(seconds=lease_s)).returning(*tickets.c))
    return list(await session.execute(stmt))


async def polled(session: AsyncSession, platform: str, ticket_id: str, status: str, again_after_s: float) -> None:
    await session.execute(update(tickets).where(and_(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id))
                          .values(status=status, polls=tickets.c.polls + 1, updated_at=func.now(),
                                  next_poll_at=datetime.now(UTC) + timedelta(seconds=again_after_s)))


async def first_acceptance(session: AsyncSession, adapter: str, replay_key: str, until: datetime) -> bool:
    """Note a callback as accepted, remembered until `until`; False if it already was (a replay).

    The row stays locked until the transaction ends: an instance taking the same callback at the
    same time waits, and then finds it taken (or free again, if this transaction rolled back)."""
    await prune_callbacks(session)
    inserted = await session.execute(insert(callbacks_seen).values(
        adapter=adapter, replay_key=replay_key, remember_until=until,
    ).on_conflict_do_nothing().returning(callbacks_seen.c.replay_key))
    return inserted.first() is not None


async def prune_callbacks(session: AsyncSession) -> None:
    """Forget callbacks that would now be refused as stale anyway, skipping rows others hold."""
    expired = (select(callbacks_seen.c.adapter, callbacks_seen.c.replay_key)
               .where(callbacks_seen.c.remember_until < func.now()).limit(PRUNED_AT_ONCE)
               .with_for_update(skip_locked=True))
    await session.execute(delete(callbacks_seen).where(
        tuple_(callbacks_seen.c.adapter, callbacks_seen.c.replay_key).in_(expired)))
