"""The hash-chained audit trail on a real Postgres: appends, what the database refuses, and what
verify says after the database's owner (triggers off) changes, deletes, inserts or reorders rows."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from services.cli import app
from services.outcomes import audit, chain
from shared.db import migrate
from shared.events import Category, Event, Platform, ReferralDispatched, ReferralSubmitted

pytestmark = pytest.mark.asyncio

MIGRATIONS = Path(__file__).parents[2] / "services" / "outcomes" / "migrations"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
EVENTS = "outcomes.audit_events"


def submitted(n: int = 0) -> Event:
    rid, agency = uuid4(), "Politie Ærø"
    data = ReferralSubmitted(referral_id=rid, agency=agency, url=f"https://facebook.com/p/{rid}",
                             canonical_url=f"https://facebook.com/p/{rid}", platform=Platform.facebook,
                             category=Category.fraud, notes="l'annonce « 🚩 »", submitted_at=T0)
    at = (T0 + timedelta(seconds=n, microseconds=n)).astimezone(timezone(timedelta(hours=2)))
    return Event(source="/takedown/intake", actor=f"agency:{agency}", time=at, data=data)


def dispatched(n: int = 0) -> Event:
    data = ReferralDispatched(referral_id=uuid4(), platform=Platform.facebook, adapter="facebook", ticket_id=f"T-{n}")
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=T0 + timedelta(minutes=n), data=data)


@pytest.fixture
async def sessions(database_url):
    await migrate(database_url, MIGRATIONS, "outcomes")
    engine = create_async_engine(database_url, pool_size=20, max_overflow=0)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def record(sessions, events: list[Event]) -> list[Event]:
    async with sessions() as session, session.begin():
        return await audit.append(session, events)


async def recorded(sessions, count: int) -> list[Event]:
    events = [submitted(n) if n % 2 else dispatched(n) for n in range(count)]
    assert await record(sessions, events) == events
    return events


async def check(sessions, checkpoint=None) -> tuple[int, str] | None:
    async with sessions() as session:
        finding = await audit.verify(session, checkpoint)
    return finding and (finding.position, finding.kind)


async def head_of(sessions) -> chain.Checkpoint:
    async with sessions() as session:
        return await audit.head(session)


async def rows(database_url: str) -> list[dict]:
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(f"SELECT * FROM {EVENTS} ORDER BY position"))).mappings()]
    finally:
        await engine.dispose()


async def as_owner(database_url: str, *statements: str, rewrite_from: int | None = None,
                   move_head: bool = True) -> None:
    """What the database's owner can do with triggers off (session_replication_role = replica);
    rewrite_from: then recompute every hash from that position on and (move_head) the head too."""
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                await conn.execute(text(statement))
            if rewrite_from is not None:
                found = [dict(r) for r in (await conn.execute(text(f"SELECT * FROM {EVENTS} ORDER BY position")))
                         .mappings()]
                before = found[rewrite_from - 2] if rewrite_from > 1 else {"position": 0, "hash": chain.GENESIS}
                for row in chain.extend((before["position"], before["hash"]), found[rewrite_from - 1:]):
                    await conn.execute(text(f"UPDATE {EVENTS} SET prev_hash = :prev_hash, hash = :hash "
                                            "WHERE position = :position"), row)
                if move_head:
                    last = found[-1]["position"]
                    await conn.execute(text("UPDATE outcomes.audit_head SET position = :position, hash = "
                                            f"(SELECT hash FROM {EVENTS} WHERE position = :position)"),
                                       {"position": last})
    finally:
        await engine.dispose()


async def test_appended_events_form_one_chain_from_genesis_that_verifies(sessions, database_url):
    first, second = await recorded(sessions, 3), [submitted(7), dispatched(8)]
    assert await record(sessions, second) == second

    stored = await rows(database_url)
    assert [r["event_id"] for r in stored] == [e.id for e in first + second]
    assert [r["position"] for r in stored] == [1, 2, 3, 4, 5] and stored[0]["prev_hash"] == chain.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(stored, stored[1:]))
    assert all(r["hash"] == chain.link(r["prev_hash"], r["position"], chain.canonical(r)) for r in stored)
    assert stored[3]["actor"] == "agency:Politie Ærø" and stored[3]["data"]["notes"] == "l'annonce « 🚩 »"
    assert await head_of(sessions) == (5, stored[-1]["hash"])
    assert await check(sessions) is None


async def test_an_event_appended_twice_is_recorded_once(sessions, database_url):
    a, b, c = submitted(1), dispatched(2), dispatched(3)
    forged_a = a.model_copy(update={"actor": "agency:forged"})

    assert await record(sessions, [a, a, b, forged_a]) == [a, b]
    assert await record(sessions, [b, c]) == [c]
    assert await record(sessions, [a]) == [] and await record(sessions, []) == []

    stored = await rows(database_url)
    assert [r["event_id"] for r in stored] == [a.id, b.id, c.id] and stored[0]["actor"] == a.actor
    assert await head_of(sessions) == (3, stored[-1]["hash"])
    assert await check(sessions) is None


async def test_twenty_concurrent_appends_in_separate_sessions_make_one_unforked_chain(sessions, database_url):
    shared = submitted(0)
    own = [dispatched(n) for n in range(20)]
    all_open = asyncio.Barrier(20)

    async def append(event: Event) -> list[Event]:
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))
            await all_open.wait()  # every transaction is open before any of them appends
            return await audit.append(session, [event, shared])

    appended = await asyncio.gather(*(append(e) for e in own))

    assert sorted(len(a) for a in appended) == [1] * 19 + [2]
    assert sum(a.count(shared) for a in appended) == 1
    stored = await rows(database_url)
    assert [r["position"] for r in stored] == list(range(1, 22))
    assert {r["event_id"] for r in stored} == {e.id for e in own} | {shared.id}
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(stored, stored[1:]))
    assert await check(sessions) is None


@pytest.mark.parametrize("statement, refusal", [
    (f"UPDATE {EVENTS} SET actor = 'agency:other' WHERE position = 2", "audit_events is append-only"),
    (f"DELETE FROM {EVENTS} WHERE position = 3", "audit_events is append-only"),
    (f"TRUNCATE {EVENTS}", "audit_events is append-only"),
    ("DELETE FROM outcomes.audit_head", "audit_head is append-only"),
    ("UPDATE outcomes.audit_head SET position = 1, hash = sha256('x')", "audit_head moves forward only"),
], ids=["update", "delete", "truncate", "deleting the head", "moving the head back"])
async def test_the_database_refuses_to_change_the_audit_trail(sessions, database_url, statement, refusal):
    await recorded(sessions, 3)
    before = await rows(database_url)

    async with sessions() as session:
        with pytest.raises(DBAPIError, match=refusal):
            await session.execute(text(statement))

    assert await rows(database_url) == before and await check(sessions) is None


RENUMBER_FROM_3 = (f"UPDATE {EVENTS} SET position = position + 1000 WHERE position >= 3",
                   f"UPDATE {EVENTS} SET position = position - 999 WHERE position > 1000")
TAMPERING = {
    "changed data": ([f"UPDATE {EVENTS} SET data = data || '{{\"ticket_id\": \"FORGED\"}}' WHERE position = 3"],
                     3, "changed"),
    "changed actor": ([f"UPDATE {EVENTS} SET actor = 'agency:someone-else' WHERE position = 4"], 4, "changed"),
    "changed time": ([f"UPDATE {EVENTS} SET occurred_at = occurred_at + interval '1 microsecond' WHERE position = 1"],
                     1, "changed"),
    "deleted row": ([f"DELETE FROM {EVENTS} WHERE position = 2"], 2, "deleted"),
    "deleted row, later ones renumbered": ([f"DELETE FROM {EVENTS} WHERE position = 2",
                                            f"UPDATE {EVENTS} SET position = position + 1000 WHERE position > 2",
                                            f"UPDATE {EVENTS} SET position = position - 1001 WHERE position > 1000"],
                                           2, "deleted"),
    "inserted row": ([*RENUMBER_FROM_3, f"""INSERT INTO {EVENTS} (position, event_id, referral_id, event_type,
                         occurred_at, actor, source, schema_version, data, prev_hash, hash)
                       SELECT 3, gen_random_uuid(), referral_id, event_type, occurred_at, 'agency:forged', source,
                              schema_version, data, hash, sha256(hash) FROM {EVENTS} WHERE position = 2"""],
                     3, "inserted"),
    "reordered rows": ([f"UPDATE {EVENTS} SET position = -4 WHERE position = 4",
                        f"UPDATE {EVENTS} SET position = 4 WHERE position = 5",
                        f"UPDATE {EVENTS} SET position = 5 WHERE position = -4"], 4, "reordered"),
    "truncated tail": ([f"DELETE FROM {EVENTS} WHERE position > 4"], 5, "truncated"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
async def test_verify_names_the_first_link_the_owner_broke_and_how(sessions, database_url, case):
    statements, position, kind = TAMPERING[case]
    await recorded(sessions, 6)
    assert await check(sessions) is None

    await as_owner(database_url, *statements)

    assert await check(sessions) == (position, kind)


async def test_a_last_row_rewritten_with_its_hash_recomputed_no_longer_matches_the_head(sessions, database_url):
    await recorded(sessions, 6)

    await as_owner(database_url, f"UPDATE {EVENTS} SET actor = 'agency:x' WHERE position = 6", rewrite_from=6,
                   move_head=False)

    assert await check(sessions) == (6, "rewritten")


async def test_a_chain_longer_than_a_verify_batch_is_checked_across_batches(sessions, database_url):
    await recorded(sessions, 2 * audit.BATCH + 3)
    assert await check(sessions) is None

    await as_owner(database_url, f"UPDATE {EVENTS} SET source = '/elsewhere' WHERE position = {audit.BATCH + 1}")

    assert await check(sessions) == (audit.BATCH + 1, "changed")


async def upgrade(database_url: str, revision: str) -> None:
    """Migrate outcomes to one revision, as shared.db.migrate does to head."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes.update(url=database_url, schema="outcomes")
    await asyncio.to_thread(command.upgrade, cfg, revision)


async def test_events_recorded_before_the_chain_existed_are_chained_in_their_order_without_gaps(database_url):
    await upgrade(database_url, "0001")
    old = [submitted(1), dispatched(2), submitted(3)]
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    async with engine.begin() as conn:  # as 0001's append_event did, with gaps a rollback or a replay leaves
        for position, event in zip((2, 5, 9), old):
            row = {k: v for k, v in audit.event_row(event).items() if k != "credential"}  # 0005 added it
            await conn.execute(audit.audit_events.insert().values(position=position, **row))
    await engine.dispose()

    await migrate(database_url, MIGRATIONS, "outcomes")
    sessions = async_sessionmaker(create_async_engine(database_url, poolclass=pool.NullPool))
    newer = dispatched(4)
    assert await record(sessions, [newer]) == [newer]

    stored = await rows(database_url)
    assert [(r["position"], r["event_id"]) for r in stored] == list(enumerate((e.id for e in [*old, newer]), 1))
    assert await check(sessions) is None and (await head_of(sessions)).position == 4


async def takedown(*args: str, env: dict | None = None):
    """The takedown command as an auditor runs it (it runs its own event loop: off this one)."""
    return await asyncio.to_thread(CliRunner().invoke, app, ["audit", *args], env=env)


async def test_takedown_audit_verify_exits_0_on_an_intact_chain_and_1_naming_the_first_broken_link(
        sessions, database_url):
    await recorded(sessions, 3)
    head = await head_of(sessions)

    intact = await takedown("verify", env={"DATABASE_URL": database_url})
    assert (intact.exit_code, intact.output) == (0, f"chain intact: 3 events, head 3 {head.hash.hex()}\n")

    await as_owner(database_url, f"UPDATE {EVENTS} SET actor = 'agency:other' WHERE position = 2")
    broken = await takedown("verify", "--database-url", database_url)
    assert broken.exit_code == 1, broken.output
    assert broken.output.startswith("chain broken at position 2 (changed): row 2 was changed after it was recorded")
    refused = await takedown("checkpoint", "--database-url", database_url)
    assert refused.exit_code == 1 and "chain broken at position 2" in refused.output


@pytest.mark.parametrize("rewrite, position, kind", [
    ({"statements": [f"UPDATE {EVENTS} SET data = data || '{{\"ticket_id\": \"FORGED\"}}' WHERE position = 2"],
      "rewrite_from": 2}, 3, "rewritten"),
    ({"statements": [f"DELETE FROM {EVENTS} WHERE position > 2"], "rewrite_from": 1}, 3, "truncated"),
], ids=["a row before it changed", "the rows from it on deleted"])
async def test_a_checkpoint_still_verifies_after_more_appends_and_fails_once_history_before_it_is_rewritten(
        sessions, database_url, rewrite, position, kind):
    await recorded(sessions, 3)
    taken = await takedown("checkpoint", "--database-url", database_url)
    assert taken.exit_code == 0, taken.output
    head = await head_of(sessions)
    assert taken.output.splitlines()[0] == f"head 3 {head.hash.hex()}"
    checkpoint = taken.output.split("--checkpoint ")[1].strip()
    assert checkpoint == f"3:{head.hash.hex()}"
    await recorded(sessions, 2)

    still = await takedown("verify", "--checkpoint", checkpoint, "--database-url", database_url)
    assert still.exit_code == 0 and still.output.startswith("chain intact: 5 events, head 5 "), still.output

    await as_owner(database_url, *rewrite["statements"], rewrite_from=rewrite["rewrite_from"])
    assert (await takedown("verify", "--database-url", database_url)).exit_code == 0  # consistent, head moved too
    caught = await takedown("verify", "--checkpoint", checkpoint, "--database-url", database_url)
    assert caught.exit_code == 1
    assert caught.output.startswith(f"chain broken at position {position} ({kind}):"), caught.output


@pytest.mark.parametrize("args, says", [
    (["verify", "--checkpoint", "3:abc"], "not a checkpoint"),
    (["verify", "--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/none"], "cannot check the audit trail"),
], ids=["a malformed checkpoint", "an unreachable database"])
async def test_takedown_audit_exits_2_when_it_cannot_check(args, says):
    result = await takedown(*args)

    assert result.exit_code == 2 and says in result.output, result.output
