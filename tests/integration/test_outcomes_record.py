"""OutcomesService.record on a real Postgres: what a batch stores is what the trail says later."""

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.outcomes import db
from services.outcomes.domain import CURSOR, project
from services.outcomes.service import OutcomesService
from shared.db import migrate
from shared.events import (ContentStillDown, Event, Outcome, Platform, ReferralClosed, ReferralDispatched,
                           ReferralOverdue, TakedownAcknowledged, TakedownDecided)
from tests.fakes import referral

MIGRATIONS = Path(__file__).parents[2] / "services" / "outcomes" / "migrations"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))


@pytest.fixture
async def sessions(database_url):
    await migrate(database_url, MIGRATIONS, "outcomes")
    engine = create_async_engine(database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def lifecycle(minutes_apart: int = 1) -> list[Event]:
    """A referral submitted, dispatched and decided, its times given in Paris time."""
    data = referral()
    at = [(T0 + timedelta(minutes=minutes_apart * n)).astimezone(PARIS) for n in range(3)]
    rid, ticket = data.referral_id, "T-1"
    return [Event(source="/takedown/intake", actor="agency:NCA", time=at[0], data=data),
            Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at[1],
                  data=ReferralDispatched(referral_id=rid, platform=Platform.facebook, adapter="meta", ticket_id=ticket)),
            Event(source="/takedown/dispatcher", actor="platform:facebook", time=at[2],
                  data=TakedownDecided(referral_id=rid, platform=Platform.facebook, ticket_id=ticket,
                                       outcome=Outcome.removed))]


def longer_lifecycle(minutes_apart: int = 1) -> list[Event]:
    """lifecycle() and then more: an acknowledgement, a deadline missed, checks, the close; two events at one moment."""
    submitted, dispatched, decided = lifecycle(minutes_apart)
    rid, at = submitted.referral_id, decided.time
    more = [(TakedownAcknowledged(referral_id=rid, platform=Platform.facebook, ticket_id="T-1"), dispatched.time),
            (ReferralOverdue(referral_id=rid, deadline=at), at),
            (ContentStillDown(referral_id=rid, url="https://fb.com/g", checked_at=at), at + timedelta(hours=1)),
            (ReferralClosed(referral_id=rid), at + timedelta(days=1))]
    return [submitted, dispatched, decided,
            *(Event(source="/takedown/outcomes", actor="service:outcomes", time=t, data=d) for d, t in more)]


async def stored_state(sessions, event: Event) -> dict:
    async with sessions() as session:
        row = await db.get_referral(session, event.referral_id)
    return {column: row[column] for column in (*db.STATE_COLUMNS, *CURSOR)}


async def trail_state(sessions, event: Event) -> dict:
    """The state projected afresh from every event the trail holds for the referral."""
    async with sessions() as session:
        history = await db.history_events(session, [event.referral_id])
    state = project(history[event.referral_id])
    return {column: state[column] for column in (*db.STATE_COLUMNS, *CURSOR)}


async def test_the_state_a_batch_stores_is_the_one_its_trail_projects_whatever_the_offsets_of_its_times(sessions):
    service = OutcomesService(sessions)
    submitted, dispatched, decided = lifecycle()

    await service.record([submitted, dispatched])
    first = await stored_state(sessions, submitted)
    await service.record([decided])
    after = await stored_state(sessions, submitted)

    assert first["status"] == "dispatched" and after["status"] == "decided"
    assert after == await trail_state(sessions, submitted)
    assert after["transitions"][:2] == first["transitions"], "the earlier transitions, as they were"
    assert all(t["at"].endswith("+00:00") for t in after["transitions"]), after["transitions"]


async def test_events_recorded_in_one_batch_or_one_by_one_leave_the_same_state(sessions):
    service = OutcomesService(sessions)
    together, apart = lifecycle(), lifecycle()

    await service.record(together)
    for event in apart:
        await service.record([event])

    one, other = await stored_state(sessions, together[0]), await stored_state(sessions, apart[0])
    assert (one.pop("last_event_id"), other.pop("last_event_id")) == (together[-1].id, apart[-1].id)
    ids = {str(e.id): "x" for e in together + apart}
    for state in (one, other):
        for entry in state["transitions"]:
            entry["event_id"] = ids[entry["event_id"]]
    assert one == other


@pytest.mark.parametrize("seed", range(4))
async def test_events_recorded_in_any_order_and_any_batches_leave_the_states_their_whole_histories_project(
        sessions, seed):
    chance = random.Random(seed)
    lifecycles = [longer_lifecycle(chance.choice((1, 0))) for _ in range(5)]  # 0: every event at one moment
    arrived = chance.sample([e for events in lifecycles for e in events], k=sum(map(len, lifecycles)))
    cuts = sorted(chance.sample(range(1, len(arrived)), k=chance.randint(1, 12)))

    service = OutcomesService(sessions)
    for start, end in zip([0, *cuts], [*cuts, len(arrived)], strict=True):
        await service.record(arrived[start:end])

    for events in lifecycles:
        expected = project(events)
        assert await stored_state(sessions, events[0]) == {c: expected[c] for c in (*db.STATE_COLUMNS, *CURSOR)}


async def test_a_state_folded_before_its_last_event_was_kept_is_projected_from_the_trail_at_its_next_event(
        sessions, database_url):
    submitted, dispatched, decided = lifecycle()
    await OutcomesService(sessions).record([submitted, dispatched])
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:  # as rows folded before migration 0006 are, with a stale state
        await conn.execute(text("UPDATE outcomes.referrals SET last_event_id = NULL, last_event_type = NULL, "
                                "transitions = '[]', dispatched_at = NULL"))
    await engine.dispose()

    await OutcomesService(sessions).record([decided])

    assert await stored_state(sessions, submitted) == await trail_state(sessions, submitted)
    assert (await stored_state(sessions, submitted))["dispatched_at"] == dispatched.time


async def test_the_data_stored_for_an_event_is_its_data_as_json(sessions, database_url):
    events = lifecycle()
    await OutcomesService(sessions).record(events)

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        stored = dict((await conn.execute(text("SELECT event_id, data FROM outcomes.audit_events"))).all())
    await engine.dispose()
    assert stored == {e.id: e.data.model_dump(mode="json") for e in events}


async def test_a_batch_recorded_again_changes_nothing_and_returns_no_new_events(sessions):
    service = OutcomesService(sessions)
    events = lifecycle()
    assert await service.record(events + events[:1]) == events

    before = await stored_state(sessions, events[0])
    assert await service.record(events) == []
    assert await stored_state(sessions, events[0]) == before



async def test_a_value_too_long_for_its_column_is_refused_not_cut_short(sessions, database_url):
    """The chain hashes the whole actor: a cut one stored would no longer match its hash."""
    submitted = lifecycle()[0].model_copy(update={"actor": "agency:" + "x" * 400})  # actor is VARCHAR(300)

    with pytest.raises(DBAPIError, match="too long"):
        await OutcomesService(sessions).record([submitted])

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events"))).scalar() == 0
    await engine.dispose()
