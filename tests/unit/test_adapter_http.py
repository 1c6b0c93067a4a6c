"""The HTTP adapters against tiny scripted platforms served over real HTTP: what they send, how
answers map to DeliveryError, tokens, and decisions in responses and polls (callbacks and the
decision object: test_adapter_answers.py)."""

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from uuid import uuid4

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from services.dispatcher.adapters import load
from services.dispatcher.adapters.base import (Decision, DeliveryError, InformationRequest, PlatformAdapter)
from services.dispatcher.adapters.http import retry_after_s
from shared import webhooks
from shared.embedded import free_port
from shared.events import (Category, Evidence, Platform,
                           ReferralSubmitted)
from tests.support import serving

CALLBACKS = "https://dispatcher.example/"
WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="
DECISION = {"visibility": ["content_removed"], "account": None, "ground": "illegal_content",
            "territorial_scope": ["GB"], "no_action_reason": None, "explanation": "Removed.",
            "decided_at": "2026-11-22T10:00:00Z"}
QUESTION = {"question": "Which statute?", "requested_at": "2026-11-22T10:00:00Z"}
TICKETS = {"/meta/v1/reports": {"report_id": "M1", "state": "received"}, "/youtube/v1/flags": {"flag_id": "Y1"},
           "/x/2/reports": {"data": {"report_id": "X1"}}, "/tiktok/v1/reports": {"report_id": "T1", "status": "open"},
           "/hook/reports": {"ticket_id": "W1", "status": "received"}}
REPORT_PATHS = {"meta": "/meta/v1/reports", "youtube": "/youtube/v1/flags", "x": "/x/2/reports",
                "tiktok": "/tiktok/v1/reports", "webhook": "/hook/reports"}
PLATFORMS = {"meta": Platform.facebook, "youtube": Platform.youtube, "x": Platform.x, "tiktok": Platform.tiktok,
             "webhook": Platform.other}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedPlatform:
    """Records every request; answers each path from its script (the last answer repeats)."""

    def __init__(self):
        self.seen: list[Seen] = []
        self.release = asyncio.Event()  # a "hang" answer waits for it
        self.tokens = 0
        self.scripts: dict[str, list] = {path: [JSONResponse(body, 201)] for path, body in TICKETS.items()}
        self.app = FastAPI(title="scripted platform")
        self.app.add_api_route("/{path:path}", self.answer, methods=["GET", "POST"])

    def script(self, path: str, *answers) -> None:
        self.scripts[path] = list(answers)

    def to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def answer(self, path: str, request: Request) -> Response:
        path = "/" + path
        self.seen.append(Seen(request.method, path, dict(request.headers), await request.body()))
        if path.endswith("/token") and path not in self.scripts:
            self.tokens += 1
            return JSONResponse({"access_token": f"token-{self.tokens}", "token_type": "bearer", "expires_in": 3600})
        answers = self.scripts.get(path) or [Response(status_code=404)]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer == "hang":
            await self.release.wait()
            return Response(status_code=204)
        return answer


@pytest.fixture
async def platform():
    scripted = ScriptedPlatform()
    async with serving(scripted.app) as url:
        scripted.url = url
        yield scripted
        scripted.release.set()


@pytest.fixture
async def adapters():
    """make(slug, platform, **config): an adapter for the scripted platform, closed after the test."""
    made: list[PlatformAdapter] = []

    def make(slug: str, platform: ScriptedPlatform | None = None, **config) -> PlatformAdapter:
        cls = load(slug)
        base = platform.url if platform else f"http://127.0.0.1:{free_port()}"
        base += "/hook" if slug == "webhook" else ""
        made.append(cls(cls.Config(base_url=base, callback_base_url=CALLBACKS, **config)))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


def referral(platform: Platform = Platform.facebook, **overrides) -> ReferralSubmitted:
    return ReferralSubmitted(**{
        "referral_id": uuid4(), "agency": "NCA", "url": "https://www.facebook.com/p/1?utm_source=x",
        "canonical_url": "https://facebook.com/p/1", "platform": platform, "category": Category.people_smuggling,
        "case_reference": "OP-7", "notes": "Crossings for sale.", "submitted_at": datetime.now(UTC),
        "evidence": [Evidence(sha256="ab" * 32, captured_at=datetime.now(UTC))], **overrides})


# -- what each dialect sends -------------------------------------------------------------------------

def expected_payload(slug: str, r: ReferralSubmitted) -> dict:
    rid, cb = str(r.referral_id), f"https://dispatcher.example/v1/callbacks/{r.platform.value}"
    return {
        "meta": {"surface": "facebook", "content_url": r.canonical_url, "violation_type": "human_exploitation",
                 "external_reference": rid, "reporter": {"organization": "NCA", "case_number": "OP-7"},
                 "evidence_hashes": ["ab" * 32], "callback_url": cb},
        "youtube": {"video_url": r.canonical_url, "reason_code": "PEOPLE_SMUGGLING", "flagger_reference": rid,
                    "notes": "Crossings for sale."},
        "x": {"url": r.canonical_url, "policy": "people_smuggling", "reporter_reference": rid, "callback_url": cb},
        "tiktok": {"link": r.canonical_url, "category": "people_smuggling", "reference": rid},
        "webhook": {"platform": "other", "reference": rid, "url": r.canonical_url, "category": "people_smuggling", "agency": "NCA",
                    "case_reference": "OP-7", "notes": "Crossings for sale.", "callback_url": cb},
    }[slug]


@pytest.mark.parametrize("slug", REPORT_PATHS)
async def test_each_adapter_sends_its_dialects_exact_payload_with_the_idempotency_key(slug, platform, adapters):
    r = referral(PLATFORMS[slug])
    receipt = await adapters(slug, platform).submit(r)
    [sent] = platform.to(REPORT_PATHS[slug])
    assert json.loads(sent.body) == expected_payload(slug, r)
    assert sent.headers["idempotency-key"] == str(r.referral_id)
    assert receipt.ticket_id == {"meta": "M1", "youtube": "Y1", "x": "X1", "tiktok": "T1", "webhook": "W1"}[slug]
    if slug == "webhook":  # Standard Webhooks: signed, timestamped, under the sandbox's secret
        webhooks.verify([WEBHOOK_SECRET], sent.headers, sent.body, now=datetime.now(UTC).timestamp())
        return
    auth = {"meta": ("authorization", "Bearer token-1"), "x": ("authorization", "Bearer token-1"),
            "youtube": ("x-api-key", "sandbox-youtube-key"), "tiktok": ("x-api-key", "sandbox-tiktok-key")}[slug]
    assert sent.headers[auth[0]] == auth[1]


async def test_each_webhook_report_is_a_new_message_and_during_a_rotation_is_signed_with_both_secrets(
        platform, adapters):
    previous = "whsec_cHJldmlvdXMtd2ViaG9vay1zZWNyZXQ="
    adapter, r = adapters("webhook", platform, previous_secret=previous), referral(Platform.other)
    await adapter.submit(r)
    await adapter.submit(r)
    first, again = platform.to("/hook/reports")
    assert first.headers["webhook-id"] != again.headers["webhook-id"], "a retry is a new message, one report"
    assert first.headers["idempotency-key"] == again.headers["idempotency-key"] == str(r.referral_id)
    for secret in (WEBHOOK_SECRET, previous):
        webhooks.verify([secret], first.headers, first.body, now=datetime.now(UTC).timestamp())


@pytest.mark.parametrize("category, violation_type", [
    ("people_smuggling", "human_exploitation"), ("human_trafficking", "human_exploitation"),
    ("terrorism", "dangerous_organizations"), ("violent_extremism", "dangerous_organizations"),
    ("fraud", "fraud_and_scams"), ("illegal_goods", "restricted_goods"), ("other", "other")])
def test_meta_maps_each_category_to_its_violation_type(category, violation_type, adapters):
    payload = adapters("meta").payload(referral(Platform.instagram, category=Category(category)))
    assert (payload["violation_type"], payload["surface"]) == (violation_type, "instagram")


def test_youtube_reason_codes_are_the_category_upper_cased(adapters):
    assert [adapters("youtube").payload(referral(category=c))["reason_code"] for c in Category] == [
        c.value.upper() for c in Category]


async def test_a_replay_answered_with_duplicate_is_a_duplicate_receipt_in_either_place(platform, adapters):
    platform.script("/x/2/reports", JSONResponse({"data": {"report_id": "X1", "duplicate": True}}))
    platform.script("/youtube/v1/flags", JSONResponse({"flag_id": "Y1", "duplicate": True}))
    assert (await adapters("x", platform).submit(referral(Platform.x))).duplicate
    assert (await adapters("youtube", platform).submit(referral(Platform.youtube))).duplicate


# -- answers mapped to DeliveryError ---------------------------------------------------------------

@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_throttling_and_server_errors_are_transient(status, platform, adapters):
    platform.script("/youtube/v1/flags", Response("busy", status, headers={"Retry-After": "7"}))
    with pytest.raises(DeliveryError) as failed:
        await adapters("youtube", platform).submit(referral(Platform.youtube))
    assert (failed.value.permanent, failed.value.retry_after) == (False, 7.0)
    assert str(status) in failed.value.reason


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 422])
async def test_redirects_and_other_client_errors_are_permanent_with_status_and_body(status, platform, adapters):
    platform.script("/youtube/v1/flags", Response("no such\nchannel " + "x" * 500, status,
                                                  headers={"Location": "/elsewhere"}))
    with pytest.raises(DeliveryError) as failed:
        await adapters("youtube", platform).submit(referral(Platform.youtube))
    assert failed.value.permanent and f"HTTP {status}" in failed.value.reason
    assert "no such channel" in failed.value.reason and len(failed.value.reason) < 300


async def test_retry_after_as_an_http_date_is_seconds_from_now(platform, adapters):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    platform.script("/tiktok/v1/reports", Response(status_code=503, headers={"Retry-After": when}))
    with pytest.raises(DeliveryError) as failed:
        await adapters("tiktok", platform).submit(referral(Platform.tiktok))
    assert not failed.value.permanent and 25 <= failed.value.retry_after <= 30


async def test_a_429_without_retry_after_is_still_transient(platform, adapters):
    platform.script("/tiktok/v1/reports", Response(status_code=429))
    with pytest.raises(DeliveryError) as failed:
        await adapters("tiktok", platform).submit(referral(Platform.tiktok))
    assert (failed.value.permanent, failed.value.retry_after) == (False, None)


def test_retry_after_values_that_cannot_be_read_are_ignored():
    assert [retry_after_s(v) for v in (None, "", "soon", "-3", "120", "1.5")] == [None, None, None, None, 120.0, 1.5]
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past


@pytest.mark.parametrize("body", [{"status": "received"}, {"flag_id": ""}, {"flag_id": None}, "not json"])
async def test_a_success_without_a_ticket_id_is_transient(body, platform, adapters):
    platform.script("/youtube/v1/flags", JSONResponse(body, 201) if body != "not json" else Response(body, 201))
    with pytest.raises(DeliveryError) as failed:
        await adapters("youtube", platform).submit(referral(Platform.youtube))
    assert not failed.value.permanent and "without a ticket id" in failed.value.reason


async def test_nothing_listening_is_transient(adapters):
    with pytest.raises(DeliveryError) as failed:
        await adapters("webhook").submit(referral(Platform.other))
    assert not failed.value.permanent and "ConnectError" in failed.value.reason


async def test_a_platform_slower_than_the_timeout_is_transient(platform, adapters):
    platform.script("/hook/reports", "hang")
    with pytest.raises(DeliveryError) as failed:
        await adapters("webhook", platform, timeout_s=0.2).submit(referral(Platform.other))
    assert not failed.value.permanent and "Timeout" in failed.value.reason


async def test_secrets_echoed_by_a_platform_stay_out_of_error_messages(platform, adapters):
    platform.script("/youtube/v1/flags", Response("bad key sandbox-youtube-key", 403))
    platform.script("/meta/oauth/token", Response("client_secret=sandbox-meta-secret refused", 401))
    for slug in ("youtube", "meta"):
        with pytest.raises(DeliveryError) as failed:
            await adapters(slug, platform).submit(referral(PLATFORMS[slug]))
        assert failed.value.permanent and "sandbox-" not in failed.value.reason and "***" in failed.value.reason


@pytest.mark.parametrize("slug", REPORT_PATHS)
def test_config_secrets_default_to_the_sandboxes_and_never_show(slug):
    config = load(slug).Config()
    secrets = [v.get_secret_value() for v in vars(config).values() if isinstance(v, SecretStr)]
    keys = [base64.b64decode(s.removeprefix("whsec_")).decode() if s.startswith("whsec_") else s for s in secrets]
    assert secrets and all(key.startswith("sandbox-") for key in keys)
    assert not any(secret in repr(config) or secret in config.model_dump_json() for secret in secrets)


# -- OAuth2 tokens ----------------------------------------------------------------------------------------

async def test_a_token_is_fetched_once_with_client_credentials_and_reused(platform, adapters):
    meta = adapters("meta", platform)
    for _ in range(3):
        await meta.submit(referral())
    [fetch] = platform.to("/meta/oauth/token")
    assert dict(p.split("=") for p in fetch.body.decode().split("&")) == {
        "grant_type": "client_credentials", "client_id": "sandbox-meta", "client_secret": "sandbox-meta-secret"}
    assert {s.headers["authorization"] for s in platform.to("/meta/v1/reports")} == {"Bearer token-1"}


async def test_reports_at_once_share_one_token_fetch(platform, adapters):
    meta = adapters("meta", platform)
    await asyncio.gather(*(meta.submit(referral()) for _ in range(5)))
    assert (platform.tokens, len(platform.to("/meta/v1/reports"))) == (1, 5)


async def test_a_token_is_refreshed_a_minute_before_it_expires(platform, adapters):
    x, now = adapters("x", platform), [1000.0]
    x.tokens.clock = lambda: now[0]
    await x.submit(referral(Platform.x))
    now[0] += 3600 - 61
    await x.submit(referral(Platform.x))
    assert platform.tokens == 1
    now[0] += 2
    await x.submit(referral(Platform.x))
    assert platform.tokens == 2
    assert platform.to("/x/2/reports")[-1].headers["authorization"] == "Bearer token-2"


async def test_a_refused_token_is_replaced_once_and_the_report_retried(platform, adapters):
    platform.script("/x/2/reports", Response(status_code=401), JSONResponse({"data": {"report_id": "X9"}}, 201))
    receipt = await adapters("x", platform).submit(referral(Platform.x))
    assert receipt.ticket_id == "X9" and platform.tokens == 2
    assert [s.headers["authorization"] for s in platform.to("/x/2/reports")] == ["Bearer token-1", "Bearer token-2"]


async def test_a_token_refused_twice_is_permanent(platform, adapters):
    platform.script("/meta/v1/reports", Response("invalid token", 401))
    with pytest.raises(DeliveryError) as failed:
        await adapters("meta", platform).submit(referral())
    assert failed.value.permanent and "401" in failed.value.reason
    assert (platform.tokens, len(platform.to("/meta/v1/reports"))) == (2, 2)


# -- decisions in responses and polls -------------------------------------------------------------------

@pytest.mark.parametrize("slug, path, id_field", [("youtube", "/youtube/v1/flags/Y1", "flag_id"),
                                                  ("tiktok", "/tiktok/v1/reports/T1", "report_id")])
async def test_polls_answer_none_while_open_then_the_question_then_the_decision(slug, path, id_field, platform,
                                                                                adapters):
    platform.script(path, JSONResponse({id_field: "Y1", "status": "open"}),
                    JSONResponse({id_field: "Y1", "status": "information_requested", "information_request": QUESTION}),
                    JSONResponse({id_field: "Y1", "status": "decided", "decision": DECISION}))
    adapter, rid = adapters(slug, platform), uuid4()
    answers = [await adapter.poll(path.rsplit("/", 1)[1], rid) for _ in range(3)]
    assert answers[0] is None
    assert isinstance(answers[1], InformationRequest) and answers[1].question == "Which statute?"
    assert isinstance(answers[2], Decision) and answers[2].referral_id == rid
    assert platform.to(path)[0].headers["x-api-key"] == f"sandbox-{slug}-key"


async def test_tiktok_gives_the_decision_in_its_receipt_when_it_decides_at_once(platform, adapters):
    platform.script("/tiktok/v1/reports", JSONResponse({"report_id": "T1", "status": "decided", "decision": DECISION},
                                                       201))
    r = referral(Platform.tiktok)
    receipt = await adapters("tiktok", platform).submit(r)
    assert isinstance(receipt.answer, Decision) and (receipt.answer.ticket_id, receipt.answer.referral_id) == (
        "T1", r.referral_id)


async def test_tiktok_keeps_the_ticket_when_its_immediate_decision_is_unreadable(platform, adapters):
    platform.script("/tiktok/v1/reports", JSONResponse(
        {"report_id": "T1", "status": "decided", "decision": {**DECISION, "ground": "vibes"}}, 201))
    receipt = await adapters("tiktok", platform).submit(referral(Platform.tiktok))
    assert (receipt.ticket_id, receipt.answer) == ("T1", None)
