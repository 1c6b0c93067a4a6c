"""Outcomes against a real broker and database: lifecycle events become an audit trail and state."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.outcomes.app import create_app
from services.outcomes.config import OutcomesSettings
from shared import topics
from shared.auth import keys
from shared.events import (NoActionReason, Category, Event, Outcome, Platform, ReferralDispatched, ReferralDispatchFailed,
                           ReferralSubmitted, TakedownDecided, to_kafka)
from tests.support import TopicReader, bearer, eventually, headers_of, produce, serving

pytestmark = pytest.mark.asyncio

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TOPIC = {ReferralSubmitted: topics.REFERRALS_SUBMITTED, ReferralDispatched: topics.REFERRALS_DISPATCH,
         ReferralDispatchFailed: topics.REFERRALS_DISPATCH, TakedownDecided: topics.TAKEDOWN_DECISIONS}


def submitted(rid: UUID, at: datetime = T0, agency: str = "NCA", platform: Platform = Platform.facebook) -> Event:
    data = ReferralSubmitted(referral_id=rid, agency=agency, url=f"https://www.{platform}.com/p/{rid}?fbclid=x",
                             canonical_url=f"https://{platform}.com/p/{rid}", platform=platform,
                             category=Category.people_smuggling, case_reference="OP-1", submitted_at=at)
    return Event(source="/takedown/intake", actor=f"agency:{agency}", time=at, data=data)


def dispatched(rid: UUID, at: datetime = T0 + timedelta(minutes=1), platform: Platform = Platform.facebook) -> Event:
    data = ReferralDispatched(referral_id=rid, platform=platform, adapter=str(platform), ticket_id=f"T-{rid.hex[:8]}")
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at, data=data)


def failed(rid: UUID, at: datetime = T0 + timedelta(minutes=5), reason: str = "HTTP 503") -> Event:
    data = ReferralDispatchFailed(referral_id=rid, platform=Platform.facebook, adapter="facebook", reason=reason)
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", time=at, data=data)


def decided(rid: UUID, at: datetime = T0 + timedelta(hours=2), platform: Platform = Platform.facebook) -> Event:
    data = TakedownDecided(referral_id=rid, platform=platform, ticket_id=f"T-{rid.hex[:8]}",
                           outcome=Outcome.rejected, no_action_reason=NoActionReason.no_violation)
    return Event(source="/takedown/dispatcher", actor=f"platform:{platform}", time=at, data=data)


async def publish(kafka: str, *events: Event) -> None:
    for event in events:
        key, value, headers = to_kafka(event)
        await produce(kafka, TOPIC[type(event.data)], value, key=key, headers=headers)


async def referral_when(client: httpx.AsyncClient, rid: UUID, check, what: str) -> dict:
    """GET the referral until check(body) holds; return the body."""

    async def get() -> dict | None:
        response = await client.get(f"/v1/referrals/{rid}")
        return response.json() if response.status_code == 200 and check(response.json()) else None

    return await eventually(get, what=what)


def history_of(n: int):
    return lambda body: len(body["history"]) >= n


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def audit_rows(database_url: str, event_id: UUID | None = None) -> int:
    """Rows in the audit trail: those of one event id, or all of them."""
    query = "SELECT count(*) FROM outcomes.audit_events" + (" WHERE event_id = :id" if event_id else "")
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(query), {"id": event_id} if event_id else {})).scalar_one()
    finally:
        await engine.dispose()


@pytest.fixture
async def outcomes(settings_env, credentials):
    """Outcomes without its scheduler, read by an auditor: these tests' events are dated long past any
    deadline, and deadlines and stays-down checks have tests of their own (test_deadlines_and_checks.py)."""
    async with serving(create_app(OutcomesSettings(**settings_env, scheduler_enabled=False))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(credentials["auditor"]["token"])) as client:
            yield client


async def test_a_referrals_lifecycle_is_recorded_as_its_state_and_a_history_in_order(outcomes, kafka):
    rid = uuid4()
    events = [submitted(rid), dispatched(rid), decided(rid)]

    await publish(kafka, *events)

    body = await referral_when(outcomes, rid, history_of(3), "three events recorded")
    assert body["status"] == "decided" and body["outcome"] == "rejected" and body["reason"] == "no_violation"
    assert body["ticket_id"] == f"T-{rid.hex[:8]}"
    assert (body["agency"], body["platform"], body["category"]) == ("NCA", "facebook", "people_smuggling")
    assert body["canonical_url"] == f"https://facebook.com/p/{rid}" and body["case_reference"] == "OP-1"
    assert ts(body["submitted_at"]) == T0 and ts(body["dispatched_at"]) == T0 + timedelta(minutes=1)
    assert ts(body["decided_at"]) == ts(body["last_event_at"]) == T0 + timedelta(hours=2)
    assert body["failure_reason"] is None
    assert [(h["event_id"], h["event_type"], h["actor"], h["source"], ts(h["occurred_at"])) for h in body["history"]] \
        == [(str(e.id), e.type, e.actor, e.source, e.time) for e in events]
    assert body["history"][0]["data"]["canonical_url"] == f"https://facebook.com/p/{rid}"


async def test_a_replayed_event_id_changes_neither_the_state_nor_the_audit_trail(outcomes, kafka, database_url):
    rid = uuid4()
    first = dispatched(rid)
    await publish(kafka, submitted(rid), first)
    before = await referral_when(outcomes, rid, history_of(2), "submitted and dispatched recorded")

    forged = first.model_copy(update={"data": first.data.model_copy(update={"ticket_id": "FORGED"})})
    await publish(kafka, first, forged)
    # Same key, same topic, so same partition: once the sentinel is in, both replays were consumed.
    sentinel = failed(rid)
    await publish(kafka, sentinel)
    after = await referral_when(outcomes, rid, lambda b: str(sentinel.id) in {h["event_id"] for h in b["history"]},
                                "the sentinel recorded")

    assert [h["event_id"] for h in after["history"]] == [h["event_id"] for h in before["history"]] + [str(sentinel.id)]
    assert after["history"][:2] == before["history"]
    assert after["dispatched_at"] == before["dispatched_at"] and after["ticket_id"] == before["ticket_id"]
    assert await audit_rows(database_url, first.id) == 1


async def test_events_arriving_in_reverse_order_still_end_decided_with_every_detail(outcomes, kafka):
    rid = uuid4()
    events = [submitted(rid), dispatched(rid), decided(rid)]

    await publish(kafka, events[2])
    only_decided = await referral_when(outcomes, rid, history_of(1), "the decision recorded")
    await publish(kafka, events[1])
    await referral_when(outcomes, rid, history_of(2), "the dispatch recorded")
    await publish(kafka, events[0])
    body = await referral_when(outcomes, rid, history_of(3), "the submission recorded")

    assert only_decided["status"] == "decided" and only_decided["agency"] is None
    assert only_decided["platform"] == "facebook"
    assert body["status"] == "decided" and body["outcome"] == "rejected"
    assert (body["agency"], body["category"], body["case_reference"]) == ("NCA", "people_smuggling", "OP-1")
    assert body["canonical_url"] == f"https://facebook.com/p/{rid}" and ts(body["submitted_at"]) == T0
    assert ts(body["last_event_at"]) == T0 + timedelta(hours=2)
    history = body["history"]
    assert [h["event_id"] for h in history] == [str(e.id) for e in events]
    assert [h["position"] for h in history] == sorted((h["position"] for h in history), reverse=True)


async def test_a_dispatch_failure_after_a_dispatch_is_kept_in_the_history_as_an_anomaly(outcomes, kafka):
    rid = uuid4()
    await publish(kafka, submitted(rid), dispatched(rid), failed(rid, reason="duplicate report refused"))

    body = await referral_when(outcomes, rid, history_of(3), "the failure recorded")

    assert body["status"] == "dispatched" and body["failure_reason"] is None
    assert [a["why"] for a in body["anomalies"]] == ["dispatched cannot become dispatch_failed"]
    assert ts(body["dispatched_at"]) == T0 + timedelta(minutes=1)
    assert [h["event_type"] for h in body["history"]] == [
        "referral.submitted", "referral.dispatched", "referral.dispatch_failed"]


async def test_a_referral_read_while_events_are_recorded_shows_state_and_history_from_one_moment(outcomes, kafka):
    rid = uuid4()
    await publish(kafka, submitted(rid))
    await referral_when(outcomes, rid, history_of(1), "the submission recorded")
    failures = [failed(rid, at=T0 + timedelta(seconds=n), reason=f"attempt {n}") for n in range(1, 41)]
    seen: list[tuple[int, str, str]] = []

    async def read_until_all_recorded() -> None:
        while not seen or seen[-1][0] < 41:
            body = (await outcomes.get(f"/v1/referrals/{rid}")).json()
            seen.append((len(body["history"]), body["last_event_at"], body["history"][-1]["occurred_at"]))

    reader = asyncio.create_task(read_until_all_recorded())
    await asyncio.gather(*(publish(kafka, f) for f in failures))
    await asyncio.wait_for(reader, 30)

    assert len({n for n, _, _ in seen}) > 1, "no read happened while events were being recorded"
    assert [(n, ts(state), ts(latest)) for n, state, latest in seen if ts(state) != ts(latest)] == []


async def walk(client: httpx.AsyncClient, limit: int, **filters) -> list[list[str]]:
    """Every page of a search, following next_cursor; the referral ids on each page."""
    pages, params = [], {**filters, "limit": limit}
    while True:
        response = await client.get("/v1/referrals", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["referral_id"] for item in body["items"]])
        if body["next_cursor"] is None:
            return pages
        assert len(pages) <= 20, "pagination does not end"
        params = {**params, "cursor": body["next_cursor"]}


async def test_search_filters_by_platform_status_and_agency_and_pages_through_every_match(outcomes, kafka):
    a, b, c, d, e, f, g = (uuid4() for _ in range(7))
    await publish(kafka, *(submitted(r) for r in (a, b, e, f, g)), submitted(c, platform=Platform.youtube),
                  submitted(d, agency="Europol"), dispatched(e), dispatched(a), decided(a))
    expected_status = {a: "decided", e: "dispatched", b: "submitted", c: "submitted", d: "submitted",
                       f: "submitted", g: "submitted"}
    for rid, status in expected_status.items():
        await referral_when(outcomes, rid, lambda body, s=status: body["status"] == s, f"{rid} {status}")

    async def matching(**filters) -> set[str]:
        [page] = await walk(outcomes, 500, **filters)
        return set(page)

    fb_nca = {str(r) for r in (a, b, e, f, g)}
    assert await matching(platform="facebook") == fb_nca | {str(d)}
    assert await matching(platform="facebook", agency="NCA") == fb_nca
    assert await matching(status="submitted", agency="NCA") == {str(r) for r in (b, c, f, g)}
    assert await matching(platform="facebook", status="decided") == {str(a)}
    assert await matching(agency="Europol") == {str(d)}
    assert await matching(platform="youtube", status="decided") == set()

    pages = await walk(outcomes, 2, platform="facebook", agency="NCA")
    assert [len(p) for p in pages] == [2, 2, 1]
    walked = [rid for page in pages for rid in page]
    assert sorted(walked) == sorted(fb_nca)
    exact = await walk(outcomes, 3, platform="facebook")  # six matches: two full pages, maybe an empty one
    assert [len(p) for p in exact if p] == [3, 3] and len(exact) <= 3
    assert sorted(rid for page in exact for rid in page) == sorted(fb_nca | {str(d)})
    assert [rid for page in await walk(outcomes, 1, platform="facebook") for rid in page] == \
        [rid for page in exact for rid in page]


@pytest.mark.parametrize("params", [
    {"cursor": "not-a-cursor"}, {"cursor": "bm90fGE="}, {"status": "pending"}, {"platform": "myspace"},
    {"limit": 0}, {"limit": 501},
], ids=["garbage cursor", "cursor of the wrong shape", "unknown status", "unknown platform", "limit 0",
        "limit above the maximum"])
async def test_a_search_with_a_bad_parameter_gets_422(outcomes, params):
    assert (await outcomes.get("/v1/referrals", params=params)).status_code == 422


async def test_an_unknown_referral_is_404_and_a_malformed_id_is_422(outcomes):
    assert (await outcomes.get(f"/v1/referrals/{uuid4()}")).status_code == 404
    assert (await outcomes.get("/v1/referrals/not-a-uuid")).status_code == 422


def _bad_records(rid: UUID) -> dict[str, tuple[str, bytes, dict[str, str | bytes | None], str]]:
    key, value, headers = to_kafka(submitted(rid))
    no_canonical = json.dumps({k: v for k, v in json.loads(value).items() if k != "canonical_url"}).encode()
    return {
        "unknown ce_type": (topics.REFERRALS_SUBMITTED, value, {**headers, "ce_type": "referral.vanished"},
                            "unknown ce_type 'referral.vanished'"),
        "no ce headers": (topics.REFERRALS_DISPATCH, value, {}, "ce_specversion must be '1.0'"),
        "body failing the schema": (topics.REFERRALS_SUBMITTED, no_canonical, headers,
                                    "canonical_url: Field required"),
        "body not JSON": (topics.TAKEDOWN_DECISIONS, b"{not json", {**headers, "ce_type": "takedown.decided"},
                          "Invalid JSON"),
        "ce_time without an offset": (topics.REFERRALS_SUBMITTED, value, {**headers, "ce_time": "2025-03-01T09:00"},
                                      "time: Input should have timezone info"),
        "header not UTF-8": (topics.REFERRALS_SUBMITTED, value, {**headers, "ce_actor": b"agency:\xff\xfe"},
                             "header 'ce_actor' is not UTF-8 text"),
        "header without a value": (topics.REFERRALS_SUBMITTED, value, {**headers, "ce_id": None},
                                   "id: Input should be a valid UUID"),
    }


@pytest.mark.parametrize("case", list(_bad_records(uuid4())))
async def test_a_record_that_is_not_a_valid_event_is_dead_lettered_and_consumption_goes_on(
        outcomes, kafka, database_url, case):
    bad_rid, good_rid = uuid4(), uuid4()
    topic, value, headers, reason = _bad_records(bad_rid)[case]

    await produce(kafka, topic, value, key=str(bad_rid).encode(), headers=headers)
    await publish(kafka, submitted(good_rid))

    async with TopicReader(kafka, topics.OUTCOMES_DLQ) as dlq:
        [dead] = await dlq.wait_for(lambda rs: len(rs) >= 1, what="the dead letter")
    dead_headers = headers_of(dead)
    assert dead.value == value and dead.key == str(bad_rid).encode()
    assert reason in dead_headers["dlq_reason"]
    assert dead_headers["dlq_original_topic"] == topic and dead_headers["dlq_attempts"] == "1"
    await referral_when(outcomes, good_rid, history_of(1), "the valid event after it recorded")
    assert (await outcomes.get(f"/v1/referrals/{bad_rid}")).status_code == 404
    assert await audit_rows(database_url) == 1


async def test_the_audit_trail_survives_a_restart_and_the_new_instance_appends_to_it(settings_env, kafka,
                                                                                      database_url, credentials):
    rid = uuid4()
    events = [submitted(rid), dispatched(rid), decided(rid)]
    async with serving(create_app(OutcomesSettings(**settings_env, scheduler_enabled=False))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(credentials["auditor"]["token"])) as client:
            await publish(kafka, *events[:2])
            before = await referral_when(client, rid, history_of(2), "two events recorded")

    async with serving(create_app(OutcomesSettings(**settings_env, scheduler_enabled=False))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(credentials["auditor"]["token"])) as client:
            restarted = (await client.get(f"/v1/referrals/{rid}")).json()
            await publish(kafka, events[2])
            after = await referral_when(client, rid, history_of(3), "the decision recorded after the restart")

    assert restarted == before
    assert after["status"] == "decided"
    assert after["history"][:2] == before["history"]
    assert [h["event_id"] for h in after["history"]] == [str(e.id) for e in events]
    for event in events:
        assert await audit_rows(database_url, event.id) == 1


async def test_the_outcomes_app_serves_exports_and_reports_and_asks_every_auditor_who_they_are(
        outcomes, kafka, credentials):
    rid = uuid4()
    await publish(kafka, submitted(rid), dispatched(rid), decided(rid))
    await referral_when(outcomes, rid, history_of(3), "three events recorded")

    export = await outcomes.get("/v1/referrals/export.csv")
    report = await outcomes.get("/v1/reports/attrition", params={"from": "2020-01-01", "to": "2030-01-01"})
    async with httpx.AsyncClient(base_url=outcomes.base_url) as anonymous_client:
        anonymous = await anonymous_client.get(f"/v1/referrals/{rid}")
    unknown = await outcomes.get(f"/v1/referrals/{rid}", headers=bearer("td_000000000000_" + "x" * 43))
    asked = await outcomes.get("/v1/auditor-queries", headers=bearer(credentials["oversight"]["token"]))

    assert export.status_code == 200 and str(rid) in export.text
    assert report.status_code == 200
    assert (anonymous.status_code, unknown.status_code) == (401, 401)
    auditor_key, _ = keys.parse(credentials["auditor"]["token"])
    assert any(q["route"] == "/v1/referrals/{referral_id}" and q["actor"] == "user:demo-auditor"
               and q["credential"] == f"key:{auditor_key}" for q in asked.json()["items"])
