"""Agencies' answers as every dialect of the sandbox takes them: recorded once per Idempotency-Key,
and a platform that asked a question decides only once it has an answer.

The helpers here (credentials, status_of, view, supply, answers_at) serve test_sandbox_status too.
"""

import time

import httpx
import pytest

from shared import webhooks
from tests.integration.test_sandbox_api import LONG_DELAY, WEBHOOK_SECRET, make_app, sandbox_client, signed, verified
from tests.integration.test_sandbox_dialects import (DIALECTS, META, TIKTOK_KEY, X, YOUTUBE_KEY, keyed, meta_report,
                                                     post_report, ticket_id_of, token)
from tests.support import eventually

REFERENCE = "referral-1"  # what post_report's reports carry
PLATFORM_OF = {"meta": "facebook", "x": "x", "youtube": "youtube", "tiktok": "tiktok", "webhook": "other"}
STATUS_PATHS = {"meta": "/meta/v1/reports/{}", "x": "/x/2/reports/{}", "youtube": "/youtube/v1/flags/{}",
                "tiktok": "/tiktok/v1/reports/{}", "webhook": "/platforms/other/reports/{}/status"}
ANSWER_PATHS = {"meta": "/meta/v1/reports/{}/replies", "x": "/x/2/reports/{}/replies",
                "youtube": "/youtube/v1/flags/{}/responses", "tiktok": "/tiktok/v1/reports/{}/information",
                "webhook": "/platforms/other/reports/{}/information"}
ANSWER = "Terrorism Act 2006, s.2; court order OP-7/2026."


async def credentials(client, dialect: str) -> dict[str, str]:
    """The headers a dialect's API calls carry (the webhook signs each request instead)."""
    if dialect == "meta":
        return await token(client, "/meta/oauth/token", META)
    if dialect == "x":
        return await token(client, "/x/oauth2/token", X)
    return {"youtube": YOUTUBE_KEY, "tiktok": TIKTOK_KEY}.get(dialect, {})


def signed_for(ticket_id: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """Standard Webhooks headers of a status request: the signature covers the ticket id."""
    return webhooks.sign([secret], ticket_id.encode(), webhooks.new_message_id(), int(time.time()))


async def status_of(client, dialect: str, ticket_id: str, headers: dict | None = None) -> httpx.Response:
    """GET the ticket's status in dialect's own way, with its credentials unless headers are given."""
    if headers is None:
        headers = signed_for(ticket_id) if dialect == "webhook" else await credentials(client, dialect)
    return await client.get(STATUS_PATHS[dialect].format(ticket_id), headers=headers)


def view(dialect: str, response: httpx.Response) -> dict:
    """The ticket view of a status answer (x's is under `data`)."""
    assert response.status_code == 200, response.text
    return response.json()["data"] if dialect == "x" else response.json()


def answer_body(dialect: str, ticket_id: str, reference: str, text: str) -> dict:
    digest = "cd" * 32
    return {"meta": {"external_reference": reference, "message": text, "evidence_hashes": [digest]},
            "x": {"reporter_reference": reference, "text": text, "evidence_hashes": [digest]},
            "youtube": {"flagger_reference": reference, "response_text": text, "evidence_hashes": [digest]},
            "tiktok": {"reference": reference, "text": text, "evidence_hashes": [digest]},
            "webhook": {"ticket_id": ticket_id, "reference": reference, "answer": text,
                        "evidence": [{"sha256": digest, "captured_at": "2026-11-22T10:00:00Z"}]}}[dialect]


async def supply(client, dialect: str, ticket_id: str, key: str = "answer-1", reference: str = REFERENCE,
                 text: str = ANSWER) -> httpx.Response:
    """Post an answer to the ticket in dialect's own shape, with its credentials."""
    path, body = ANSWER_PATHS[dialect].format(ticket_id), answer_body(dialect, ticket_id, reference, text)
    if dialect == "webhook":
        return await client.post(path, **signed(body, key))
    return await client.post(path, json=body, headers=keyed(await credentials(client, dialect), key))


async def answers_at(client, dialect: str, ticket_id: str) -> list[dict]:
    """The answers the platform recorded on the ticket (the sandbox's inspection)."""
    response = await client.get(f"/platforms/{PLATFORM_OF[dialect]}/reports/{ticket_id}")
    assert response.status_code == 200, response.text
    return response.json()["answers"]


def answer_id(dialect: str, response: httpx.Response) -> str:
    body = response.json().get("data", response.json())
    return next(body[k] for k in ("reply_id", "response_id", "information_id", "answer_id") if k in body)


# --- recorded once per Idempotency-Key ------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_records_an_answer_once_per_idempotency_key(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect)).json())
        first, replay = await supply(client, dialect, ticket_id), await supply(client, dialect, ticket_id)
        assert (first.status_code, replay.status_code) == (201, 200), replay.text
        assert answer_id(dialect, replay) == answer_id(dialect, first)
        assert (await supply(client, dialect, ticket_id, key="answer-2", text="And more.")).status_code == 201

        recorded = await answers_at(client, dialect, ticket_id)
        assert [(a["idempotency_key"], a["text"]) for a in recorded] == [("answer-1", ANSWER),
                                                                          ("answer-2", "And more.")]
        assert recorded[0]["evidence"] == ["cd" * 32]
        stats = (await client.get("/stats")).json()["by_platform"][PLATFORM_OF[dialect]]
        assert (stats["answers"], stats["answer_duplicates"]) == (2, 1)
        [summary] = (await client.get("/admin/tickets")).json()
        assert (summary["ticket_id"], summary["answers"]) == (ticket_id, 2)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_answers_an_answer_to_an_unknown_ticket_with_404(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        response = await supply(client, dialect, f"{PLATFORM_OF[dialect]}-nothing")
        assert response.status_code == 404, response.text
        assert (await client.get("/stats")).json()["by_platform"][PLATFORM_OF[dialect]]["answers"] == 0


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_refuses_an_answer_about_another_referral_with_409(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect)).json())
        assert (await supply(client, dialect, ticket_id, reference="referral-2")).status_code == 409
        assert await answers_at(client, dialect, ticket_id) == []


@pytest.mark.parametrize("dialect", ["meta", "x", "youtube", "tiktok"])
async def test_an_answer_without_the_dialects_credentials_is_refused(dialect):
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect)).json())
        body = answer_body(dialect, ticket_id, REFERENCE, ANSWER)
        response = await client.post(ANSWER_PATHS[dialect].format(ticket_id), json=body,
                                     headers=keyed({"X-Api-Key": "guess", "Authorization": "Bearer guess"}))
        assert response.status_code in (401, 403)
        assert await answers_at(client, dialect, ticket_id) == []


async def test_a_webhook_answer_signed_wrongly_replayed_or_for_another_ticket_is_refused():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, "webhook")).json())
        path, body = ANSWER_PATHS["webhook"].format(ticket_id), answer_body("webhook", ticket_id, REFERENCE, ANSWER)
        wrong = signed(body, "answer-1", secret="whsec_bm90LXRoZS1zYW5kYm94LXNlY3JldA==")
        assert (await client.post(path, **wrong)).status_code == 401
        taken = signed(body, "answer-1")
        assert (await client.post(path, **taken)).status_code == 201
        assert (await client.post(path, **taken)).status_code == 401, "the same webhook-id again is a replay"
        other = signed({**body, "ticket_id": "other-elsewhere"}, "answer-2")
        assert (await client.post(path, **other)).status_code == 409
        assert len(await answers_at(client, "webhook", ticket_id)) == 1


async def test_an_answer_during_an_outage_is_refused_with_503_and_retry_after_and_not_recorded():
    async with sandbox_client(make_app(delay=LONG_DELAY)) as client:
        ticket_id = ticket_id_of((await post_report(client, "youtube")).json())
        await client.post("/admin/youtube/outage", json={"seconds": 30})
        refused = await supply(client, "youtube", ticket_id)
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        await client.post("/admin/youtube/outage", json={"seconds": 0})
        assert (await supply(client, "youtube", ticket_id)).status_code == 201
        assert len(await answers_at(client, "youtube", ticket_id)) == 1


# --- a question waits for its answer ----------------------------------------------------------------


async def settled(app) -> None:
    """Wait until nothing is pending in the sandbox: no decision or callback will happen by itself."""
    async def idle():
        return not app.state.sandbox.tasks

    await eventually(idle, 10, "the sandbox's pending decisions and callbacks")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_every_dialect_decides_a_question_only_once_it_is_answered(dialect, receiver):
    app = make_app(policy="information_request=1", delay=0.05)
    async with sandbox_client(app) as client:
        ticket_id = ticket_id_of((await post_report(client, dialect, callback_url=receiver.url)).json())

        async def asked():
            return view(dialect, await status_of(client, dialect, ticket_id))["status"] == "information_requested"

        await eventually(asked, 10, "the information request")
        await settled(app)
        asking = view(dialect, await status_of(client, dialect, ticket_id))
        assert asking["status"] == "information_requested", "no decision without an answer"
        assert set(asking["information_request"]) == {"question", "requested_at"}

        assert (await supply(client, dialect, ticket_id)).status_code == 201

        async def decided():
            body = view(dialect, await status_of(client, dialect, ticket_id))
            return body if body["status"] == "decided" else None

        assert (await eventually(decided, 10, "the decision"))["decision"]["visibility"] == ["content_removed"]


async def test_an_answer_before_any_question_is_recorded_and_changes_no_decision():
    app = make_app(policy="information_request=1", delay=0.05)
    async with sandbox_client(app) as client:
        ticket_id = ticket_id_of((await post_report(client, "youtube")).json())
        assert (await supply(client, "youtube", ticket_id)).status_code == 201
        await settled(app)
        assert view("youtube", await status_of(client, "youtube", ticket_id))["status"] == "information_requested"
        assert (await supply(client, "youtube", ticket_id, key="answer-2")).status_code == 201
        await settled(app)
        assert view("youtube", await status_of(client, "youtube", ticket_id))["status"] == "decided"


async def test_meta_calls_back_the_question_then_the_decision_that_follows_the_reply(receiver):
    app = make_app(policy="information_request=1", delay=0.05)
    async with sandbox_client(app) as client:
        auth = await token(client, "/meta/oauth/token", META)
        created = await client.post("/meta/v1/reports", json=meta_report(callback_url=receiver.url),
                                    headers=keyed(auth))
        report_id = created.json()["report_id"]
        await receiver.wait_for(1)
        await settled(app)
        assert len(receiver.calls) == 1, "no decision called back before the reply"
        assert (await supply(client, "meta", report_id)).status_code == 201
        await receiver.wait_for(2)
        asked, decided = (body["entry"][0] for body in receiver.bodies)
        assert "decision" not in asked and set(asked["information_request"]) == {"question", "requested_at"}
        assert decided["decision"]["visibility"] == ["content_removed"]


async def test_the_webhook_calls_back_the_question_and_the_decision_as_two_signed_messages(receiver):
    app = make_app(policy="information_request=1", delay=0.05)
    async with sandbox_client(app) as client:
        response = await client.post("/platforms/other/reports", **signed(
            {"platform": "other", "reference": REFERENCE, "url": "https://example.org/p/1", "category": "fraud",
             "agency": "NCA", "callback_url": receiver.url}))
        ticket_id = response.json()["ticket_id"]
        await receiver.wait_for(1)
        assert (await supply(client, "webhook", ticket_id)).status_code == 201
        calls = await receiver.wait_for(2)
        asked, decided = receiver.bodies
        assert all(verified(headers, raw) for headers, raw in calls)
        assert len({headers["webhook-id"] for headers, _ in calls}) == 2, "each callback is a message of its own"
        assert asked["information_request"]["question"].strip() and "information_request" not in decided
        assert decided["decision"]["visibility"] == ["content_removed"]
