"""The platform sandbox over HTTP: the generic webhook dialect, callbacks to a real receiving
server, and the operations endpoints (stats, reset, health, admin).

The helpers here (Receiver, make_app, sandbox_client, signed) serve the other sandbox tests too.
"""

import asyncio
import contextlib
import json
import time
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.sandbox.app import create_app
from services.sandbox.config import SandboxSettings
from shared import webhooks
from tests.support import eventually

LONG_DELAY = 30.0  # decisions that must not happen while the test runs
WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="
STATS_ZERO = {"reports": 0, "duplicates": 0, "decided": 0, "requests": 0, "throttled": 0, "errors": 0,
              "unavailable": 0, "hung": 0, "answers": 0, "answer_duplicates": 0, "callbacks_dropped": 0}


def make_app(policy: str | None = "removed=1", delay: float | None = 0.05, **settings) -> FastAPI:
    return create_app(SandboxSettings(sandbox_policy=policy, sandbox_decision_delay_s=delay,
                                      sandbox_seed="tests", **settings))


@contextlib.asynccontextmanager
async def sandbox_client(app: FastAPI):
    """A client of app with its lifespan running (ASGITransport does not run it)."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        yield client


def signed(payload: dict, key: str | None = "key-1", secret: str = WEBHOOK_SECRET, age_s: float = 0,
           message_id: str | None = None) -> dict:
    """Request arguments for a generic-webhook report signed as Standard Webhooks says (a new message)."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **webhooks.sign(
        [secret], body, message_id or webhooks.new_message_id(), int(time.time() - age_s))}
    if key is not None:
        headers["Idempotency-Key"] = key
    return {"content": body, "headers": headers}


def report(reference: str = "referral-1", callback_url: str | None = None, platform: str = "other") -> dict:
    return {"platform": platform, "reference": reference, "url": "https://facebook.com/groups/123", "category": "fraud",
            "agency": "NCA", "case_reference": "OP-7", "notes": None, "callback_url": callback_url}


async def submit(client, platform="facebook", key="key-1", **kwargs) -> httpx.Response:
    return await client.post(f"/platforms/{platform}/reports", **signed(report(platform=platform, **kwargs), key))


def verified(headers: dict[str, str], raw: bytes) -> bool:
    """Whether a callback is signed as Standard Webhooks says, with the webhook secret, just now."""
    return webhooks.verify([WEBHOOK_SECRET], headers, raw, now=time.time()) is not None


async def ticket(client, ticket_id: str, platform: str = "facebook") -> dict:
    response = await client.get(f"/platforms/{platform}/reports/{ticket_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_new_report_gets_a_ticket_named_after_its_platform():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        response = await submit(client, platform="other")
        assert response.status_code == 201
        body = response.json()
        assert body["ticket_id"].startswith("other-")
        assert body == {"ticket_id": body["ticket_id"], "status": "received", "duplicate": False}


async def test_a_report_with_a_wrong_or_missing_signature_is_refused_with_401():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        wrong = signed(report(), secret="whsec_bm90LXRoZS1zYW5kYm94LXNlY3JldA==")
        assert (await client.post("/platforms/other/reports", **wrong)).status_code == 401
        unsigned = signed(report())
        del unsigned["headers"]["webhook-signature"]
        assert (await client.post("/platforms/other/reports", **unsigned)).status_code == 401
        tampered = signed(report())
        tampered["content"] = tampered["content"].replace(b"referral-1", b"referral-2")
        assert (await client.post("/platforms/other/reports", **tampered)).status_code == 401
        assert (await client.get("/stats")).json()["reports"] == 0


@pytest.mark.parametrize("age_s, reason", [(301, "stale"), (-301, "in the future")])
async def test_a_report_signed_more_than_five_minutes_ago_or_ahead_is_refused_with_401_saying_so(age_s, reason):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        response = await client.post("/platforms/other/reports", **signed(report(), age_s=age_s))
        assert response.status_code == 401 and reason in response.json()["detail"]
        assert (await client.get("/stats")).json()["reports"] == 0


async def test_a_report_whose_webhook_id_was_taken_is_refused_as_a_replay_and_one_refused_for_an_outage_is_not():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        taken = signed(report())
        assert (await client.post("/platforms/other/reports", **taken)).status_code == 201
        replayed = await client.post("/platforms/other/reports", **taken)
        assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]

        retried = signed(report(reference="referral-2"), key="key-2")
        await client.post("/admin/other/outage", json={"seconds": 30})
        assert (await client.post("/platforms/other/reports", **retried)).status_code == 503
        await client.post("/admin/other/outage", json={"seconds": 0})
        assert (await client.post("/platforms/other/reports", **retried)).status_code == 201


async def test_the_decision_is_called_back_for_the_platform_the_signed_report_named(receiver):
    async with sandbox_client(make_app(policy="removed=1")) as client:
        await client.post("/platforms/other/reports", **signed(report(platform="telegram", callback_url=receiver.url)))
        [(headers, raw)] = await receiver.wait_for(1)
        assert verified(headers, raw) and json.loads(raw)["platform"] == "telegram"


async def test_a_replayed_report_returns_the_same_ticket_and_is_counted_as_a_duplicate():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        first = await submit(client)
        again = await submit(client)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == {"ticket_id": first.json()["ticket_id"], "status": "received",
                                "duplicate": True}
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (1, 1)
        assert stats["by_platform"]["facebook"] == {**STATS_ZERO, "reports": 1, "duplicates": 1, "requests": 2}
        assert stats["by_platform"]["youtube"] == STATS_ZERO


async def test_a_replayed_report_does_not_schedule_a_second_decision(receiver):
    app = make_app(delay=0.2)
    async with sandbox_client(app) as client:
        await submit(client, callback_url=receiver.url)
        await submit(client, callback_url=receiver.url)
        assert len(app.state.sandbox.tasks) == 1

        async def finished():
            return not app.state.sandbox.tasks

        await eventually(finished, 10, "the decision to finish")
        assert len(receiver.calls) == 1


async def test_concurrent_requests_with_one_key_make_one_ticket():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        responses = await asyncio.gather(*(submit(client, key="same") for _ in range(20)))
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert len({r.json()["ticket_id"] for r in responses}) == 1
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (1, 19)


async def test_the_same_key_on_another_platform_is_another_report():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        one = await submit(client, platform="facebook", key="k")
        other = await submit(client, platform="youtube", key="k")
        assert (one.status_code, other.status_code) == (201, 201)
        assert one.json()["ticket_id"] != other.json()["ticket_id"]


async def test_a_report_without_an_idempotency_key_is_refused_with_422():
    async with sandbox_client(make_app()) as client:
        response = await client.post("/platforms/facebook/reports", **signed(report(), key=None))
        assert response.status_code == 422
        assert (await client.get("/stats")).json()["reports"] == 0


async def test_a_report_missing_a_field_is_refused_with_422():
    async with sandbox_client(make_app()) as client:
        body = report()
        del body["url"]
        assert (await client.post("/platforms/x/reports", **signed(body))).status_code == 422


async def test_an_unknown_platform_is_404():
    async with sandbox_client(make_app()) as client:
        assert (await submit(client, platform="myspace")).status_code == 404
        assert (await client.get("/platforms/myspace/reports/myspace-1")).status_code == 404
        assert (await client.post("/admin/myspace/outage", json={"seconds": 1})).status_code == 404


async def test_an_unknown_ticket_or_one_of_another_platform_is_404():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client, platform="x")).json()["ticket_id"]
        assert (await client.get("/platforms/x/reports/x-nothing")).status_code == 404
        assert (await client.get(f"/platforms/instagram/reports/{ticket_id}")).status_code == 404


async def test_a_ticket_is_open_until_decided():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client, reference="referral-42")).json()["ticket_id"]
        body = await ticket(client, ticket_id)
        assert body["status"] == "open"
        assert (body["ticket_id"], body["platform"], body["reference"], body["dialect"]) == (
            ticket_id, "facebook", "referral-42", "webhook")
        assert (body["outcome"], body["decision"], body["decided_at"]) == (None, None, None)
        assert datetime.fromisoformat(body["received_at"]).utcoffset() == timedelta(0)


async def test_the_decision_is_called_back_signed_with_the_webhook_secret(receiver):
    async with sandbox_client(make_app(policy="removed=1")) as client:
        ticket_id = (await submit(client, platform="other", reference="referral-7",
                                  callback_url=receiver.url)).json()["ticket_id"]
        [(headers, raw)] = await receiver.wait_for(1)
        assert verified(headers, raw)
        call = json.loads(raw)
        assert set(call) == {"ticket_id", "reference", "platform", "decision"}
        assert (call["ticket_id"], call["reference"], call["platform"]) == (ticket_id, "referral-7", "other")
        decision = call["decision"]
        assert {k: decision[k] for k in ("visibility", "account", "ground", "territorial_scope",
                                         "no_action_reason")} == {
            "visibility": ["content_removed"], "account": None, "ground": "illegal_content",
            "territorial_scope": ["GB"], "no_action_reason": None}
        assert decision["explanation"]
        assert decision["decided_at"].endswith("Z")
        assert datetime.fromisoformat(decision["decided_at"]).utcoffset() == timedelta(0)
        body = await ticket(client, ticket_id, "other")
        assert (body["status"], body["outcome"], body["decision"]) == ("decided", "removed", decision)
        assert (await client.get("/stats")).json()["by_platform"]["other"]["decided"] == 1


async def test_a_rejection_is_called_back_as_no_violation_not_breaching_terms(receiver):
    async with sandbox_client(make_app(policy="rejected=1")) as client:
        await submit(client, platform="telegram", callback_url=receiver.url)
        await receiver.wait_for(1)
        decision = receiver.bodies[0]["decision"]
        assert (decision["no_action_reason"], decision["visibility"], decision["ground"]) == (
            "no_violation", [], None)
        assert "not breaching" in decision["explanation"]


async def test_a_platform_that_never_answers_leaves_the_ticket_open_and_calls_nobody(receiver):
    app = make_app(policy="none=1", delay=0.05)
    async with sandbox_client(app) as client:
        ticket_id = (await submit(client, callback_url=receiver.url)).json()["ticket_id"]

        async def drawn():
            return not app.state.sandbox.tasks

        await eventually(drawn, 10, "the fate to be drawn")
        # Watch the ticket for a while after its fate was drawn: it must stay open.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            assert (await ticket(client, ticket_id))["status"] == "open"
            await asyncio.sleep(0.02)
        assert receiver.calls == []
        assert (await client.get("/stats")).json()["by_platform"]["facebook"]["decided"] == 0


async def test_a_failed_callback_is_retried_until_the_receiver_accepts_it(receiver):
    receiver.answers = [500]
    async with sandbox_client(make_app(policy="removed=1")) as client:
        await submit(client, callback_url=receiver.url)
        await receiver.wait_for(2)
        (first_headers, first), (second_headers, second) = receiver.calls
        assert first == second
        assert first_headers["webhook-id"] == second_headers["webhook-id"], "posted again, the same message"


async def test_a_report_without_a_callback_url_is_still_decided():
    async with sandbox_client(make_app(policy="restricted=1")) as client:
        ticket_id = (await submit(client)).json()["ticket_id"]

        async def decided():
            return (await ticket(client, ticket_id))["status"] == "decided"

        await eventually(decided, 10, "the ticket to be decided")
        body = await ticket(client, ticket_id)
        assert (body["outcome"], body["reason"]) == ("restricted", None)
        assert (body["decision"]["visibility"], body["decision"]["ground"]) == (
            ["content_age_restricted"], "incompatible_with_terms")


async def test_reset_forgets_every_ticket_and_counter():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client)).json()["ticket_id"]
        assert (await client.post("/reset")).status_code == 204
        assert (await client.get(f"/platforms/facebook/reports/{ticket_id}")).status_code == 404
        stats = (await client.get("/stats")).json()
        assert stats["reports"] == 0 and stats["by_platform"]["facebook"] == STATS_ZERO
        assert (await submit(client)).status_code == 201


async def test_health_says_ok():
    async with sandbox_client(make_app()) as client:
        assert (await client.get("/health")).json() == {"status": "ok", "service": "sandbox"}


async def test_the_admin_endpoint_shows_the_personas_with_the_overrides_applied():
    async with sandbox_client(make_app(policy="removed=3,none=1", delay=0.25)) as client:
        personas = (await client.get("/admin/personas")).json()
        assert set(personas) == {"facebook", "instagram", "youtube", "x", "tiktok", "telegram", "other"}
        for persona in personas.values():
            assert persona["decisions"] == {"removed": 0.75, "none": 0.25}
            assert persona["decision_delay_s"] == 0.25
        assert personas["x"]["latency_ms"] == {"mean": 5.0, "jitter": 2.0}  # the rest is the persona's


async def test_without_overrides_the_admin_endpoint_shows_the_shipped_personas():
    async with sandbox_client(make_app(policy=None, delay=None)) as client:
        personas = (await client.get("/admin/personas")).json()
        assert personas["facebook"]["decisions"] == pytest.approx({"removed": 0.48, "rejected": 0.40, "none": 0.12})
        assert personas["tiktok"]["decision_delay_s"] == 0
        assert personas["x"]["decision_delay_s"] > personas["facebook"]["decision_delay_s"]
