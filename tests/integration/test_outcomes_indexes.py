"""The queries on outcomes.referrals can still use an index once migration 0007 has dropped some and
made others partial (plans taken with sequential scans off, so that a tiny table does not hide it)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.outcomes import search
from services.outcomes.domain import Status
from shared.db import migrate
from shared.events import NoActionReason, Outcome

MIGRATIONS = Path(__file__).parents[2] / "services" / "outcomes" / "migrations"
JAN, FEB = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url):
    await migrate(database_url, MIGRATIONS, "outcomes")
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def plan(engine, filters: search.Filters) -> str:
    stmt = search.statement(filters).compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        return "\n".join(await conn.scalars(text(f"EXPLAIN {stmt}")))


async def test_the_state_table_keeps_only_the_indexes_a_query_uses(engine):
    async with engine.connect() as conn:
        found = dict((await conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                              "WHERE schemaname = 'outcomes' AND tablename = 'referrals'"))).all())
    assert not {"referrals_page", "referrals_submitted_at", "referrals_canonical_url"} & set(found)
    for column in ("outcome", "reason", "decided_at"):
        assert found[f"referrals_{column}"].endswith(f"WHERE ({column} IS NOT NULL)")


@pytest.mark.parametrize(("filters", "index"), [
    (search.Filters(url="https://x.example/post/1"), "referrals_canonical_url_prefix"),
    (search.Filters(url_prefix="https://x.example/"), "referrals_canonical_url_prefix"),
    (search.Filters(outcome=Outcome.removed), "referrals_outcome"),
    (search.Filters(reason=NoActionReason.no_violation), "referrals_reason"),
    (search.Filters(decided_from=JAN, decided_to=FEB), "referrals_decided_at"),
    (search.Filters(submitted_from=JAN, submitted_to=FEB), "referrals_search"),
    (search.Filters(status=Status.decided), "referrals_status"),
])
async def test_an_auditors_search_by_a_filter_can_use_its_index(engine, filters, index):
    assert index in await plan(engine, filters)
