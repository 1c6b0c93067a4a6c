"""The auditors' API over HTTP, on a real Postgres migrated to head and seeded with known referrals,
read by the demo identities: auditors read everything, an agency only its own referrals, and
oversight alone the record of queries.

Expected figures are computed from the seed's own rows in plain Python (tests/seed.py), never by SQL.
"""

import asyncio
import csv
import io
import json
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.outcomes import api, auditors, exports, queries_log
from services.outcomes.search import Filters
from shared import auth, db
from shared.auth import Authenticator, Role, demo, keys
from tests import seed
from tests.support import bearer, serving

PERIOD = {"from": "2020-01-01", "to": "2020-06-01"}
NCA_SET, BULK = seed.nca_set(), seed.bulk_set(5000)
ACTIONS = ("removed", "restricted", "rejected", "pending")
NCAS = [r for r in NCA_SET if r["agency"] == "NCA"]
EUROPOLS = [r["referral_id"] for r in NCA_SET if r["agency"] == "Europol"]


@pytest.fixture(scope="module")
def nca_database(postgres_server) -> str:
    return asyncio.run(seed.migrated(seed.fresh_database(postgres_server), NCA_SET))


@pytest.fixture(scope="module")
def nca_credentials(nca_database, tmp_path_factory) -> dict:
    """The demo identities in the NCA set's database (its agency NCA is the seed's)."""
    return demo.ensure(nca_database, tmp_path_factory.mktemp("nca-credentials") / demo.FILE)


@pytest.fixture(scope="module")
def bulk_database(postgres_server) -> str:
    return asyncio.run(seed.migrated(seed.fresh_database(postgres_server), BULK))


@pytest.fixture(scope="module")
def bulk_credentials(bulk_database, tmp_path_factory) -> dict:
    return demo.ensure(bulk_database, tmp_path_factory.mktemp("bulk-credentials") / demo.FILE)


def signed_in(credentials: dict, who: str) -> dict[str, str]:
    """The headers of a demo identity: an agency (NCA, BorderForce) or a person's role (auditor, oversight...)."""
    return bearer(credentials["agencies"][who]["token"] if who in credentials["agencies"] else credentials[who]["token"])


def auditor_app(database_url: str) -> FastAPI:
    """The routes as app.py wires them, its authenticator included, without a broker: the auditors'
    first, so /{referral_id} cannot shadow theirs."""
    engine = db.make_engine(database_url)
    export_engine = db.make_engine(database_url, pool_size=2, max_overflow=0, statement_timeout_s=300)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await engine.dispose()
        await export_engine.dispose()

    app = FastAPI(title="auditors under test", lifespan=lifespan)
    app.state.sessions, app.state.export_sessions = db.make_sessions(engine), db.make_sessions(export_engine)
    app.state.export_slots = asyncio.Semaphore(2)
    app.include_router(auditors.router)
    app.include_router(auditors.oversight)
    app.include_router(api.router)
    auth.secure(app, Authenticator(app.state.sessions))
    return app


@asynccontextmanager
async def client_of(database_url: str, headers: dict[str, str]):
    async with serving(auditor_app(database_url)) as url, \
            httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
async def nca(nca_database, nca_credentials):
    """A client of the NCA set, signed in as the demo auditor."""
    async with client_of(nca_database, signed_in(nca_credentials, "auditor")) as client:
        yield client


@pytest.fixture
async def bulk(bulk_database, bulk_credentials):
    """A client of the bulk set, signed in as the demo auditor."""
    async with client_of(bulk_database, signed_in(bulk_credentials, "auditor")) as client:
        yield client


async def walk(client: httpx.AsyncClient, limit: int, headers: dict[str, str] | None = None,
               **filters) -> list[list[str]]:
    """Every page of a search, following next_cursor: the referral ids on each page."""
    pages, params = [], {**filters, "limit": limit}
    while True:
        response = await client.get("/v1/referrals", params=params, headers=headers)
        assert response.status_code == 200, response.text
        pages.append([item["referral_id"] for item in response.json()["items"]])
        if response.json()["next_cursor"] is None:
            return pages
        params = {**params, "cursor": response.json()["next_cursor"]}


def page_order(rows: list[dict]) -> list[str]:
    """Referral ids by submission time, referrals without one last, then by id."""
    return [str(r["referral_id"]) for r in sorted(rows, key=lambda r: (
        r["submitted_at"] is None, r["submitted_at"] or datetime.min.replace(tzinfo=UTC), r["referral_id"]))]


@pytest.mark.parametrize("limit", [7, 307, 500], ids=["7 a page", "4 full pages", "500 a page"])
async def test_a_search_walks_every_referral_exactly_once_in_submission_order(nca, limit):
    pages = await walk(nca, limit)

    assert [rid for page in pages for rid in page] == page_order(NCA_SET)
    assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1) and 0 < len(pages[-1]) <= limit


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).astimezone(UTC)


def between(column: str, start: str, end: str):
    return lambda r: r[column] is not None and at(start) <= r[column] < at(end)


EXACT = {"agency": "Europol", "platform": "youtube", "category": "fraud", "status": "reopened",
         "outcome": "restricted", "reason": "insufficient_information", "case_reference": 'EP/ALPHA, "north"'}
FILTERS = {
    **{name: ({name: value}, lambda r, name=name, value=value: r[name] == value) for name, value in EXACT.items()},
    "submitted period": ({"submitted_from": "2020-02-01", "submitted_to": "2020-03-01T01:00:00+01:00"},
                         between("submitted_at", "2020-02-01T00:00:00+00:00", "2020-03-01T00:00:00+00:00")),
    "decided period": ({"decided_from": "2020-04-01", "decided_to": "2020-05-01"},
                       between("decided_at", "2020-04-01T00:00:00+00:00", "2020-05-01T00:00:00+00:00")),
    "url": ({"url": "https://youtube.com/watch?v=nca00042"},
            lambda r: r["canonical_url"] == "https://youtube.com/watch?v=nca00042"),
    "url prefix": ({"url_prefix": "https://facebook.com/groups/g1/"},
                   lambda r: (r["canonical_url"] or "").startswith("https://facebook.com/groups/g1/")),
    "url prefix with % and _": ({"url_prefix": "https://x.com/a_b%"},
                                lambda r: r["canonical_url"] == "https://x.com/a_b%/status/1"),
    "several at once": ({"platform": "facebook", "outcome": "removed", "submitted_from": "2020-03-01",
                         "case_reference": "NCA/OP-3"},
                        lambda r: r["platform"] == "facebook" and r["outcome"] == "removed"
                        and r["case_reference"] == "NCA/OP-3" and r["submitted_at"] >= at("2020-03-01T00:00+00:00")),
}


@pytest.mark.parametrize("case", list(FILTERS))
async def test_each_filter_finds_exactly_the_referrals_it_describes(nca, case):
    params, matches = FILTERS[case]
    expected = page_order([r for r in NCA_SET if matches(r)])

    pages = await walk(nca, 100, **params)

    assert 0 < len(expected) < len(NCA_SET)
    assert [rid for page in pages for rid in page] == expected


@pytest.mark.parametrize("route, params, param", [
    ("/v1/referrals", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v1/referrals", {"cursor": queries_log.encode_cursor(3)}, "cursor"),
    ("/v1/referrals", {"submitted_from": "yesterday"}, "submitted_from"),
    ("/v1/referrals", {"decided_from": "2020-05-01", "decided_to": "2020-04-01"}, "decided_to"),
    ("/v1/referrals", {"status": "pending"}, "status"),
    ("/v1/referrals", {"limit": 0}, "limit"),
    ("/v1/referrals", {"limit": 501}, "limit"),
    ("/v1/referrals", {"url_prefix": "true"}, "url_prefix"),
    ("/v1/referrals/export.csv", {"platform": "myspace"}, "platform"),
    ("/v1/referrals/export.ndjson", {"submitted_to": "soon"}, "submitted_to"),
    ("/v1/reports/attrition", {"from": "2020-06-01", "to": "2020-01-01"}, "to"),
    ("/v1/reports/attrition.csv", {"group_by": "week"}, "group_by"),
    ("/v1/reports/dsa-article-22", {"from": "last year"}, "from"),
    ("/v1/auditor-queries", {"cursor": "x"}, "cursor"),
])
async def test_a_parameter_that_cannot_be_used_gets_422_naming_it(nca, nca_credentials, route, params, param):
    oversight = signed_in(nca_credentials, "oversight") if route == "/v1/auditor-queries" else None
    response = await nca.get(route, params=params, headers=oversight)

    assert response.status_code == 422
    assert param in [error["loc"][-1] for error in response.json()["detail"]]


async def recorded(database_url: str) -> list[dict]:
    engine = db.make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(
                "SELECT * FROM outcomes.auditor_queries ORDER BY id"))).mappings()]
    finally:
        await engine.dispose()


READ_ROUTES = ["/v1/referrals", "/v1/referrals/export.csv", "/v1/referrals/export.ndjson", "/v1/reports/attrition",
               "/v1/reports/attrition.csv", "/v1/reports/dsa-article-22", "/v1/reports/dsa-article-22.csv"]


@pytest.mark.parametrize("route", [*READ_ROUTES, "/v1/auditor-queries", f"/v1/referrals/{EUROPOLS[0]}"])
async def test_every_auditor_route_refuses_a_request_that_does_not_prove_who_asks(nca, nca_database, nca_credentials,
                                                                                   route):
    before = await recorded(nca_database)
    async with httpx.AsyncClient(base_url=nca.base_url) as anonymous:
        missing = await anonymous.get(route)
        unproven = [await anonymous.get(route, headers={"Authorization": value}) for value in (
            "Bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer not-a-token", "Bearer td_000000000000_" + "a" * 43)]
        claimed = await anonymous.get(route, headers={"X-Actor": "user:alice"})
        operator = await anonymous.get(route, headers=signed_in(nca_credentials, "operator"))

    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert [r.status_code for r in unproven] == [401] * 4
    assert claimed.status_code == 401, "an X-Actor header proves nothing"
    assert operator.status_code == 403, "an operator reads nothing here"
    assert await recorded(nca_database) == before


async def test_the_csv_export_streams_every_referral_with_its_fields_as_stored(bulk):
    async with bulk.stream("GET", "/v1/referrals/export.csv") as response:
        body = (await response.aread()).decode()

    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked" and "content-length" not in response.headers
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert list(rows[0]) == list(exports.CSV_COLUMNS) and len(rows) == 5000
    assert [r["referral_id"] for r in rows] == page_order(BULK)
    seeded = {str(r["referral_id"]): r for r in BULK}
    assert all(r["case_reference"] == seeded[r["referral_id"]]["case_reference"] for r in rows)
    assert all(r["submitted_at"] == exports.cell(seeded[r["referral_id"]]["submitted_at"]) for r in rows)
    filtered = await bulk.get("/v1/referrals/export.csv", params={"platform": "tiktok", "outcome": "removed"})
    assert len(list(csv.reader(io.StringIO(filtered.text, newline="")))) == 1 + sum(
        r["platform"] == "tiktok" and r["outcome"] == "removed" for r in BULK)


async def test_the_ndjson_export_streams_every_referral_with_its_transitions_and_anomalies(bulk):
    async with bulk.stream("GET", "/v1/referrals/export.ndjson") as response:
        lines = [line async for line in response.aiter_lines() if line]

    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked" and len(lines) == 5000
    seeded = {str(r["referral_id"]): r for r in BULK}
    items = [json.loads(line) for line in lines]
    assert [i["referral_id"] for i in items] == page_order(BULK)
    assert all(i["transitions"] == seeded[i["referral_id"]]["transitions"] and i["anomalies"] == [] for i in items)


async def test_an_export_reads_through_a_server_side_cursor_one_batch_at_a_time(bulk_database):
    engine = db.make_engine(bulk_database)
    try:
        async with db.make_sessions(engine)() as session:
            chunks = exports.csv_chunks(session, Filters(), size=500)
            header, first = await anext(chunks), await anext(chunks)
            # The portals open on this connection, other than the one of this very query.
            portals = (await session.execute(text("SELECT statement FROM pg_cursors"))).scalars().all()
            rest = [chunk async for chunk in chunks]
    finally:
        await engine.dispose()

    assert header.startswith("referral_id,")
    assert len(list(csv.reader(io.StringIO(first, newline="")))) == 500 and len(rest) == 9
    [export] = [statement for statement in portals if "pg_cursors" not in statement]
    assert export.startswith("SELECT outcomes.referrals.referral_id") and "FROM outcomes.referrals" in export


def in_scope(start: str = PERIOD["from"], end: str = PERIOD["to"], agency: str | None = None) -> list[dict]:
    return [r for r in NCA_SET if r["submitted_at"] is not None and at(f"{start}T00:00+00:00") <= r["submitted_at"]
            < at(f"{end}T00:00+00:00") and agency in (None, r["agency"])]


async def test_the_attrition_report_answers_the_ncas_question_exactly(nca):
    response = await nca.get("/v1/reports/attrition", params={**PERIOD, "agency": "NCA"})

    rows = {row["platform"]: row for row in response.json()["rows"]}
    assert list(rows) == ["facebook", "youtube", "all platforms"]
    assert [rows[p]["referred"] for p in rows] == [700, 500, 1200]
    nca_total = rows["all platforms"]
    assert [nca_total[f] for f in ("removed", "rejected", "rejected_no_violation", "pending")] == [578, 485, 485, 137]
    # By hand: facebook decided 35 each at 1..10 h and 70 each at 24, 48, 72, 96 h; youtube 38 each at 2..12 h
    # (even) and 41 each at 12, 24, 36, 48, 60 h. Medians and 90th percentiles fall on a single value or pair.
    assert [(rows[p]["median_hours_to_decision"], rows[p]["p90_hours_to_decision"]) for p in rows] == [
        (9.5, 96.0), (12.0, 48.0), (10.0, 72.0)]
    assert response.json()["rows"] == seed.expected_attrition(in_scope(agency="NCA"), by_month=False)


async def test_the_attrition_report_counts_every_fate_and_reason_per_platform_and_month(nca):
    by_month = await nca.get("/v1/reports/attrition", params={**PERIOD, "group_by": "month"})
    as_csv = await nca.get("/v1/reports/attrition.csv", params={**PERIOD, "group_by": "month"})
    one_platform = await nca.get("/v1/reports/attrition", params={**PERIOD, "platform": "x"})
    nothing = await nca.get("/v1/reports/attrition", params={"from": "2030-01-01"})

    assert by_month.json()["rows"] == seed.expected_attrition(in_scope(), by_month=True)
    assert list(csv.DictReader(io.StringIO(as_csv.text, newline=""))) == [
        {k: exports.cell(v) for k, v in row.items()} for row in by_month.json()["rows"]]
    assert one_platform.json()["rows"] == seed.expected_attrition([r for r in in_scope() if r["platform"] == "x"], False)
    assert nothing.json()["rows"] == seed.expected_attrition([], by_month=False)


async def test_the_dsa_article_22_report_counts_notices_by_provider_type_and_action(nca):
    body = (await nca.get("/v1/reports/dsa-article-22", params=PERIOD)).json()
    lines = list(csv.reader(io.StringIO((await nca.get("/v1/reports/dsa-article-22.csv", params=PERIOD)).text,
                                        newline="")))
    nca_only = (await nca.get("/v1/reports/dsa-article-22", params={**PERIOD, "agency": "NCA"})).json()

    notices = [r for r in in_scope() if r["dispatched_at"] or r["decided_at"]]
    actions = Counter((r["platform"], r["category"], r["outcome"] or "pending") for r in notices)
    assert [(x["platform"], x["category"], x["action"], x["notices"]) for x in body["rows"]] == \
        sorted((*key, n) for key, n in actions.items())
    assert body["by_platform"] == dict(sorted(Counter(r["platform"] for r in notices).items()))
    assert body["by_category"] == dict(sorted(Counter(r["category"] for r in notices).items()))
    assert body["by_action"] == {a: sum(n for key, n in actions.items() if key[2] == a) for a in ACTIONS}
    assert (body["notices"], body["not_delivered"]) == (len(notices), len(in_scope()) - len(notices)) == (1226, 3)
    assert lines[1:len(body["rows"]) + 1] == [[x["platform"], x["category"], x["action"], str(x["notices"])]
                                               for x in body["rows"]]
    assert lines[-1] == ["all", "all", "all", "1226"] and ["all", "all", "restricted", "6"] in lines
    assert (nca_only["notices"], nca_only["by_action"]) == (
        1200, {"removed": 578, "restricted": 0, "rejected": 485, "pending": 137})


def detail_lines(article_22_csv: str) -> list[list[str]]:
    """The lines of the Art. 22 CSV that are not its header or a total."""
    return [line for line in list(csv.reader(io.StringIO(article_22_csv, newline="")))[1:] if "all" not in line]


async def auditors_named(database_url: str, *names: str) -> dict[str, str]:
    """An auditor's API key for each person named: name -> token."""
    engine = db.make_engine(database_url)
    try:
        async with db.make_sessions(engine)() as session, session.begin():
            return {name: (await keys.create(session, Role.auditor, name, None, "test")).token for name in names}
    finally:
        await engine.dispose()


def key_of(token: str) -> str:
    """The credential a token's queries are recorded with."""
    key_id, _ = keys.parse(token)
    return f"key:{key_id}"


async def test_every_auditor_query_is_recorded_with_who_asked_what_when_and_how_many_rows(database_url, credentials):
    await seed.migrated(database_url, seed.europol_x())
    tokens = {f"user:{name}": token for name, token in (await auditors_named(database_url, "alice", "bob", "carol")).items()}
    tokens["agency:NCA"] = credentials["agencies"]["NCA"]["token"]
    asks = [("user:alice", "/v1/referrals", {"platform": "x", "limit": "10"}),
            ("user:bob", "/v1/referrals/export.csv", {"status": "expired"}),
            ("user:bob", "/v1/referrals/export.ndjson", {}),
            ("user:alice", "/v1/reports/attrition", {"from": "2020-01-01", "group_by": "month"}),
            ("user:carol", "/v1/reports/dsa-article-22.csv", {"platform": ["x", "x"]}),
            ("agency:NCA", "/v1/referrals", {"platform": "x"}),
            ("user:alice", "/v1/reports/dsa-article-22", {})]
    started = datetime.now(UTC)
    async with client_of(database_url, bearer(credentials["oversight"]["token"])) as client:
        answers = [await client.get(route, params=params, headers=bearer(tokens[actor]))
                   for actor, route, params in asks]
        pages = [(await client.get("/v1/auditor-queries", params={"limit": 4})).json()]
        pages.append((await client.get("/v1/auditor-queries", params={"limit": 4, "cursor": pages[0]["next_cursor"]})
                      ).json())
        bobs = (await client.get("/v1/auditor-queries", params={"actor": "user:bob"})).json()

    assert [a.status_code for a in answers] == [200] * len(asks) and pages[1]["next_cursor"] is None
    listed = [q for page in pages for q in page["items"]]
    assert [(q["actor"], q["credential"], q["route"], q["params"]) for q in listed] == [
        (a, key_of(tokens[a]), r, p) for a, r, p in reversed(asks)]
    assert [q["rows"] for q in reversed(listed)] == [
        10, None, None, len(answers[3].json()["rows"]), len(detail_lines(answers[4].text)), 0,
        len(answers[6].json()["rows"])]
    assert all(started <= at(q["at"]) <= datetime.now(UTC) for q in listed)
    assert [q["route"] for q in bobs["items"]] == ["/v1/referrals/export.ndjson", "/v1/referrals/export.csv"]
    log = await recorded(database_url)
    assert [(q["actor"], q["credential"], q["route"]) for q in log[len(asks):]] == [
        ("user:demo-oversight", key_of(credentials["oversight"]["token"]), "/v1/auditor-queries")] * 3


async def test_the_record_of_auditor_queries_can_be_added_to_but_never_changed(database_url):
    await seed.migrated(database_url)
    engine = db.make_engine(database_url)
    try:
        async with db.make_sessions(engine)() as session:
            query_id = await queries_log.record(session, "user:alice", "key:0123456789ab",
                                                "/v1/referrals/{referral_id}", {"referral_id": str(uuid.uuid4())}, 1)
            await session.commit()
        for change in ("UPDATE outcomes.auditor_queries SET rows = 0", "DELETE FROM outcomes.auditor_queries",
                       "TRUNCATE outcomes.auditor_queries"):
            async with engine.begin() as conn:
                with pytest.raises(Exception, match="append-only"):
                    await conn.execute(text(change))
    finally:
        await engine.dispose()

    assert [(q["id"], q["actor"], q["credential"], q["rows"]) for q in await recorded(database_url)] == [
        (query_id, "user:alice", "key:0123456789ab", 1)]


def ids(pages: list[list[str]]) -> list[str]:
    return [rid for page in pages for rid in page]


async def exported(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """The referral ids of the CSV and of the NDJSON export, as a caller gets them."""
    as_csv = await client.get("/v1/referrals/export.csv", headers=headers)
    as_ndjson = await client.get("/v1/referrals/export.ndjson", headers=headers)
    assert (as_csv.status_code, as_ndjson.status_code) == (200, 200)
    return ([r["referral_id"] for r in csv.DictReader(io.StringIO(as_csv.text, newline=""))],
            [json.loads(line)["referral_id"] for line in as_ndjson.text.splitlines() if line])


async def test_an_agencys_search_exports_and_reports_hold_its_own_referrals_and_no_other_agencys(nca, nca_credentials):
    as_nca = signed_in(nca_credentials, "NCA")

    searched = ids(await walk(nca, 500, headers=as_nca))
    by_platform = ids(await walk(nca, 500, headers=as_nca, platform="x"))
    as_csv, as_ndjson = await exported(nca, as_nca)
    attrition = (await nca.get("/v1/reports/attrition", params=PERIOD, headers=as_nca)).json()
    article_22 = (await nca.get("/v1/reports/dsa-article-22", params=PERIOD, headers=as_nca)).json()
    article_22_csv = await nca.get("/v1/reports/dsa-article-22.csv", params=PERIOD, headers=as_nca)

    assert searched == as_csv == as_ndjson == page_order(NCAS)
    assert by_platform == [], "Europol's referrals to x are not the NCA's"
    assert attrition["agency"] == "NCA"
    assert attrition["rows"] == seed.expected_attrition(in_scope(agency="NCA"), by_month=False)
    assert (article_22["notices"], article_22["by_platform"]) == (1200, {"facebook": 700, "youtube": 500})
    assert {line[0] for line in detail_lines(article_22_csv.text)} == {"facebook", "youtube"}


async def test_an_agency_without_referrals_finds_none_of_other_agencies(nca, nca_credentials):
    as_border_force = signed_in(nca_credentials, "BorderForce")

    searched = ids(await walk(nca, 500, headers=as_border_force))
    as_csv, as_ndjson = await exported(nca, as_border_force)
    attrition = (await nca.get("/v1/reports/attrition", params=PERIOD, headers=as_border_force)).json()
    article_22 = (await nca.get("/v1/reports/dsa-article-22", params=PERIOD, headers=as_border_force)).json()
    nca_referral = await nca.get(f"/v1/referrals/{NCAS[0]['referral_id']}", headers=as_border_force)

    assert searched == as_csv == as_ndjson == []
    assert attrition["rows"] == seed.expected_attrition([], by_month=False)
    assert (article_22["notices"], article_22["not_delivered"]) == (0, 0)
    assert nca_referral.status_code == 404


@pytest.mark.parametrize("route", READ_ROUTES)
async def test_an_agency_asking_for_another_agency_is_refused_and_for_its_own_is_answered(nca, nca_credentials, route):
    as_nca = signed_in(nca_credentials, "NCA")

    other = await nca.get(route, params={**PERIOD, "agency": "Europol"}, headers=as_nca)
    own = await nca.get(route, params={**PERIOD, "agency": "NCA"}, headers=as_nca)

    assert other.status_code == 403 and other.json() == {"detail": "an agency reads only its own referrals"}
    assert own.status_code == 200


async def test_another_agencys_referral_is_not_found_by_an_agency_and_the_query_is_recorded_under_it(
        nca, nca_database, nca_credentials):
    as_nca = signed_in(nca_credentials, "NCA")
    europol, own = EUROPOLS[0], NCAS[0]["referral_id"]

    by_auditor = await nca.get(f"/v1/referrals/{europol}")
    own_read = await nca.get(f"/v1/referrals/{own}", headers=as_nca)
    by_nca = await nca.get(f"/v1/referrals/{europol}", headers=as_nca)
    last = (await recorded(nca_database))[-1]

    assert (by_auditor.status_code, own_read.status_code) == (200, 200)
    assert by_auditor.json()["agency"] == "Europol" and own_read.json()["agency"] == "NCA"
    assert by_nca.status_code == 404 and by_nca.json() == {"detail": f"no referral {europol}"}, "as if it did not exist"
    assert (last["actor"], last["credential"], last["route"], last["rows"]) == (
        "agency:NCA", key_of(nca_credentials["agencies"]["NCA"]["token"]), "/v1/referrals/{referral_id}", 0)


async def test_an_auditor_sees_every_agencys_referrals(nca):
    everyone = ids(await walk(nca, 500))
    europol = ids(await walk(nca, 500, agency="Europol"))
    as_csv, as_ndjson = await exported(nca, {})

    assert everyone == as_csv == as_ndjson == page_order(NCA_SET)
    assert {"NCA", "Europol"} <= {r["agency"] for r in NCA_SET}
    assert europol == page_order([r for r in NCA_SET if r["agency"] == "Europol"]) != []


async def test_only_oversight_reads_the_record_of_queries(nca, nca_credentials):
    answers = {who: (await nca.get("/v1/auditor-queries", headers=signed_in(nca_credentials, who))).status_code
               for who in ("auditor", "NCA", "operator", "oversight")}

    assert answers == {"auditor": 403, "NCA": 403, "operator": 403, "oversight": 200}
