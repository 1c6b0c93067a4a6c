"""Accepted webhook-ids and agencies' signing secrets in a real database: a replay is told from the
same record delivered again, ids are kept with their referrals or not at all, and a retired
secret stops verifying within the cache's lifetime."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.intake.app import MIGRATIONS
from services.intake.db import SCHEMA, Accepted, Position, WebhookId
from services.intake.domain import Submission
from services.intake.service import IntakeService
from shared import db
from shared.auth import Principal, Role, signing
from shared.auth.signing import ActiveSecrets
from tests.support import create_signing_secrets

NOW = datetime.now(UTC)


@pytest.fixture
async def sessions(database_url):
    await db.migrate(database_url, MIGRATIONS, SCHEMA)
    engine = db.make_engine(database_url)
    yield db.make_sessions(engine)
    await engine.dispose()


def agency(name: str = "NCA") -> Principal:
    return Principal(name=name, roles=frozenset({Role.agency}), credential=f"signed:{name}", agency=name)


def item(url: str, by: str = "NCA") -> tuple[Submission, Principal]:
    return Submission(url=url, category="fraud", idempotency_key=url), agency(by)


def webhook_id(msg_id: str, offset: int, by: str = "NCA", signed_at: datetime = NOW) -> WebhookId:
    return WebhookId(by, msg_id, signed_at, Position("referrals.inbound", 1, offset))


async def count(sessions, table: str) -> int:
    async with sessions() as session:
        return (await session.execute(text(f"SELECT count(*) FROM intake.{table}"))).scalar_one()


async def test_the_same_record_delivered_again_is_a_duplicate_not_a_replay(sessions):
    service = IntakeService(sessions, on_commit=lambda: None)
    [first] = await service.submit_signed([item("https://x.com/a")], [webhook_id("msg_a", 7)])

    [again] = await service.submit_signed([item("https://x.com/a")], [webhook_id("msg_a", 7)])

    assert isinstance(again, Accepted) and again.duplicate and again.referral_id == first.referral_id


async def test_a_record_with_an_accepted_webhook_id_at_another_position_is_a_replay_and_not_stored(sessions):
    service = IntakeService(sessions, on_commit=lambda: None)
    await service.submit_signed([item("https://x.com/a")], [webhook_id("msg_a", 7)])

    [replay] = await service.submit_signed([item("https://x.com/changed")], [webhook_id("msg_a", 9)])

    assert replay == Position("referrals.inbound", 1, 7)
    assert await count(sessions, "referrals") == 1


async def test_within_one_batch_the_second_record_with_a_webhook_id_is_the_replay(sessions):
    service = IntakeService(sessions, on_commit=lambda: None)

    answers = await service.submit_signed([item("https://x.com/a"), item("https://x.com/b"), item("https://x.com/c")],
                                          [webhook_id("msg_a", 1), webhook_id("msg_a", 2), webhook_id("msg_c", 3)])

    assert isinstance(answers[0], Accepted) and isinstance(answers[2], Accepted)
    assert answers[1] == Position("referrals.inbound", 1, 1)
    assert await count(sessions, "referrals") == 2


async def test_one_webhook_id_may_be_used_by_two_agencies(sessions):
    service = IntakeService(sessions, on_commit=lambda: None)

    answers = await service.submit_signed([item("https://x.com/a"), item("https://x.com/b", by="Europol")],
                                          [webhook_id("msg_1", 1), webhook_id("msg_1", 2, by="Europol")])

    assert all(isinstance(a, Accepted) for a in answers)


async def test_a_webhook_id_is_remembered_only_if_its_referral_is_stored(sessions):
    """One transaction: a crash or a refusal between them cannot leave the id without its referral."""
    async with sessions() as session, session.begin():
        await session.execute(text("ALTER TABLE intake.outbox ADD CONSTRAINT refuse_all CHECK (false)"))
    service = IntakeService(sessions, on_commit=lambda: None)

    with pytest.raises(IntegrityError, match="refuse_all"):
        await service.submit_signed([item("https://x.com/a")], [webhook_id("msg_a", 1)])

    assert await count(sessions, "webhook_ids") == 0 and await count(sessions, "referrals") == 0


async def test_ids_signed_longer_ago_than_the_replay_window_are_forgotten_a_chunk_at_a_time(sessions):
    service = IntakeService(sessions, on_commit=lambda: None)
    old = [webhook_id(f"msg_old{n}", n, signed_at=NOW - timedelta(hours=25)) for n in range(3)]
    await service.submit_signed([item(f"https://x.com/{n}") for n in range(4)],
                                [*old, webhook_id("msg_new", 3, signed_at=NOW - timedelta(hours=23))])

    assert await service.forget_webhook_ids(24 * 3600, chunk=2) == 3

    async with sessions() as session:
        kept = (await session.execute(text("SELECT webhook_id FROM intake.webhook_ids"))).scalars().all()
    assert kept == ["msg_new"]


async def test_a_retired_secret_stops_verifying_once_the_cache_has_expired(database_url):
    secrets = await create_signing_secrets(database_url, ("NCA",))
    engine = db.make_engine(database_url)
    clock = [1000.0]
    cache = ActiveSecrets(db.make_sessions(engine), cache_s=5, clock=lambda: clock[0])
    try:
        assert await cache.of(["NCA", "Interpol"]) == {"NCA": [secrets["NCA"]], "Interpol": []}
        async with db.make_sessions(engine)() as session, session.begin():
            await signing.retire(session, "NCA")

        clock[0] += 4.9
        assert await cache.of(["NCA"]) == {"NCA": [secrets["NCA"]]}, "within cache_s: remembered"
        clock[0] += 0.2
        assert await cache.of(["NCA"]) == {"NCA": []}
    finally:
        await engine.dispose()


async def test_after_a_rotation_both_the_new_and_the_previous_secret_are_active_newest_first(database_url):
    previous = (await create_signing_secrets(database_url, ("NCA",)))["NCA"]
    engine = db.make_engine(database_url)
    try:
        async with db.make_sessions(engine)() as session, session.begin():
            newest = await signing.create(session, "NCA", "tests")
        assert await ActiveSecrets(db.make_sessions(engine)).of(["NCA"]) == {"NCA": [newest, previous]}
    finally:
        await engine.dispose()
