"""shared.db.copy_records on a real Postgres: COPY inside the session's transaction, errors as SQLAlchemy's."""

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.db import copy_records, make_engine, make_sessions
from shared.reliability import is_transient

things = Table("things", MetaData(schema="copytest"), Column("id", Integer, primary_key=True),
               Column("name", String(10), nullable=False))


@pytest.fixture
async def sessions(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA copytest"))
        await conn.run_sync(things.metadata.create_all)
    yield make_sessions(engine)
    await engine.dispose()


async def count(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(things))


async def test_copied_rows_commit_and_roll_back_with_the_session_transaction(sessions):
    async with sessions() as session, session.begin():
        await session.execute(text("SELECT 1"))
        await copy_records(session, things, ("id", "name"), [(1, "one"), (2, "two")])
    with pytest.raises(ZeroDivisionError):
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))
            await copy_records(session, things, ("id", "name"), [(3, "three")])
            raise ZeroDivisionError  # anything that aborts the transaction after the COPY
    assert await count(sessions) == 2


async def test_a_copy_before_the_transaction_began_in_the_database_is_refused(sessions):
    async with sessions() as session, session.begin():
        with pytest.raises(RuntimeError, match="outside a transaction"):
            await copy_records(session, things, ("id", "name"), [(1, "one")])
    assert await count(sessions) == 0


async def test_a_bad_row_fails_as_an_integrity_error_that_is_not_an_outage(sessions):
    with pytest.raises(IntegrityError) as failed:
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))
            await copy_records(session, things, ("id", "name"), [(1, "one"), (1, "again")])
    assert failed.value.orig.sqlstate == "23505" and not is_transient(failed.value)


async def test_a_connection_killed_before_the_copy_is_an_outage_and_the_pool_heals(sessions, database_url):
    killer = make_engine(database_url)
    try:
        with pytest.raises(DBAPIError) as failed:
            async with sessions() as session, session.begin():
                pid = await session.scalar(text("SELECT pg_backend_pid()"))
                async with killer.begin() as conn:
                    assert await conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
                await copy_records(session, things, ("id", "name"), [(1, "one")])
    finally:
        await killer.dispose()
    assert is_transient(failed.value)
    async with sessions() as session, session.begin():  # the pool's only connection was replaced
        await session.execute(text("SELECT 1"))
        await copy_records(session, things, ("id", "name"), [(1, "one")])
    assert await count(sessions) == 1
