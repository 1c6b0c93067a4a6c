"""The platform sandbox over HTTP, with decisions called back to a real receiving server."""

import asyncio
import contextlib
import inspect
import time
from datetime import datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from services.sandbox.app import create_app
from services.sandbox.config import SandboxSettings

LONG_DELAY = 30.0  # decisions that must not happen while the test runs


async def eventually(condition, timeout: float = 5.0, what: str = "condition"):
    """Poll condition (sync or async) until it is truthy; fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Receiver:
    """A decision endpoint that records every callback and answers scripted statuses."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answers: list[int] = []  # answered in turn; 200 once used up
        self.url = ""
        self.app = FastAPI()
        self.app.add_api_route("/decisions", self._receive, methods=["POST"])

    async def _receive(self, request: Request) -> Response:
        self.calls.append(await request.json())
        return Response(status_code=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def receiver():
    """A Receiver served by uvicorn on a free port for the length of one test."""
    recv = Receiver()
    config = uvicorn.Config(recv.app, host="127.0.0.1", port=0, lifespan="off",
                            log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), 10, "the receiver to start")
    if task.done():
        task.result()
    port = server.servers[0].sockets[0].getsockname()[1]
    recv.url = f"http://127.0.0.1:{port}/decisions"
    yield recv
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def make_app(policy: str = "removed=1", delay: float = 0.05) -> FastAPI:
    return create_app(SandboxSettings(sandbox_policy=policy, sandbox_decision_delay_s=delay,
                                      sandbox_seed="tests"))


@contextlib.asynccontextmanager
async def serving(app: FastAPI):
    """A client of app with its lifespan running (ASGITransport does not run it)."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        yield client


def report(reference: str = "referral-1", callback_url: str | None = None) -> dict:
    return {"reference": reference, "url": "https://facebook.com/groups/123", "category": "fraud",
            "agency": "NCA", "case_reference": "OP-7", "notes": None, "callback_url": callback_url}


async def submit(client, platform="facebook", key="key-1", **kwargs) -> httpx.Response:
    return await client.post(f"/platforms/{platform}/reports", json=report(**kwargs),
                             headers={"Idempotency-Key": key})


async def ticket(client, ticket_id: str, platform: str = "facebook") -> dict:
    response = await client.get(f"/platforms/{platform}/reports/{ticket_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_new_report_gets_a_ticket_named_after_its_platform():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        response = await submit(client, platform="tiktok")
        assert response.status_code == 201
        body = response.json()
        assert body["ticket_id"].startswith("tiktok-")
        assert body == {"ticket_id": body["ticket_id"], "status": "received", "duplicate": False}


async def test_a_replayed_report_returns_the_same_ticket_and_is_counted_as_a_duplicate():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        first = await submit(client)
        again = await submit(client)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == {"ticket_id": first.json()["ticket_id"], "status": "received",
                                "duplicate": True}
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (1, 1)
        assert stats["by_platform"]["facebook"] == {"reports": 1, "duplicates": 1, "decided": 0}
        assert stats["by_platform"]["youtube"] == {"reports": 0, "duplicates": 0, "decided": 0}


async def test_a_replayed_report_does_not_schedule_a_second_decision(receiver):
    app = make_app(delay=0.2)
    async with serving(app) as client:
        await submit(client, callback_url=receiver.url)
        await submit(client, callback_url=receiver.url)
        assert len(app.state.sandbox.tasks) == 1
        await eventually(lambda: not app.state.sandbox.tasks, what="the decision to finish")
        assert len(receiver.calls) == 1


async def test_concurrent_requests_with_one_key_make_one_ticket():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        responses = await asyncio.gather(*(submit(client, key="same") for _ in range(20)))
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert len({r.json()["ticket_id"] for r in responses}) == 1
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (1, 19)


async def test_the_same_key_on_another_platform_is_another_report():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        one = await submit(client, platform="facebook", key="k")
        other = await submit(client, platform="youtube", key="k")
        assert (one.status_code, other.status_code) == (201, 201)
        assert one.json()["ticket_id"] != other.json()["ticket_id"]


async def test_a_report_without_an_idempotency_key_is_refused_with_422():
    async with serving(make_app()) as client:
        response = await client.post("/platforms/facebook/reports", json=report())
        assert response.status_code == 422
        assert (await client.get("/stats")).json()["reports"] == 0


async def test_a_report_missing_a_field_is_refused_with_422():
    async with serving(make_app()) as client:
        body = report()
        del body["url"]
        response = await client.post("/platforms/x/reports", json=body,
                                     headers={"Idempotency-Key": "k"})
        assert response.status_code == 422


async def test_an_unknown_platform_is_404():
    async with serving(make_app()) as client:
        assert (await submit(client, platform="myspace")).status_code == 404
        assert (await client.get("/platforms/myspace/reports/myspace-1")).status_code == 404


async def test_an_unknown_ticket_or_one_of_another_platform_is_404():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client, platform="x")).json()["ticket_id"]
        assert (await client.get("/platforms/x/reports/x-nothing")).status_code == 404
        assert (await client.get(f"/platforms/instagram/reports/{ticket_id}")).status_code == 404


async def test_a_ticket_is_open_until_decided():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client, reference="referral-42")).json()["ticket_id"]
        body = await ticket(client, ticket_id)
        assert body["status"] == "open"
        assert (body["ticket_id"], body["platform"], body["reference"]) == (ticket_id, "facebook",
                                                                             "referral-42")
        assert (body["outcome"], body["reason"], body["decided_at"]) == (None, None, None)
        assert datetime.fromisoformat(body["received_at"]).utcoffset() == timedelta(0)


async def test_the_decision_is_called_back_with_outcome_removed_under_a_removed_only_policy(receiver):
    async with serving(make_app(policy="removed=1")) as client:
        ticket_id = (await submit(client, reference="referral-7",
                                  callback_url=receiver.url)).json()["ticket_id"]
        await eventually(lambda: receiver.calls, what="the decision callback")
        [call] = receiver.calls
        assert {k: call[k] for k in ("ticket_id", "reference", "platform", "outcome", "reason")} == {
            "ticket_id": ticket_id, "reference": "referral-7", "platform": "facebook",
            "outcome": "removed", "reason": None}
        assert call["note"]
        assert datetime.fromisoformat(call["decided_at"]).utcoffset() == timedelta(0)
        body = await ticket(client, ticket_id)
        assert (body["status"], body["outcome"]) == ("decided", "removed")
        assert body["decided_at"] is not None
        assert (await client.get("/stats")).json()["by_platform"]["facebook"]["decided"] == 1


async def test_a_rejection_is_called_back_with_the_reason_no_violation(receiver):
    async with serving(make_app(policy="rejected=1")) as client:
        await submit(client, platform="telegram", callback_url=receiver.url)
        await eventually(lambda: receiver.calls, what="the decision callback")
        assert (receiver.calls[0]["outcome"], receiver.calls[0]["reason"]) == ("rejected", "no_violation")
        assert receiver.calls[0]["platform"] == "telegram"


async def test_a_platform_that_never_answers_leaves_the_ticket_open_and_calls_nobody(receiver):
    app = make_app(policy="none=1", delay=0.05)
    async with serving(app) as client:
        ticket_id = (await submit(client, callback_url=receiver.url)).json()["ticket_id"]
        # The delay is 0.05s; watch the ticket for ten times that, it must stay open.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert (await ticket(client, ticket_id))["status"] == "open"
            await asyncio.sleep(0.02)
        assert not app.state.sandbox.tasks, "the decision should have been drawn by now"
        assert receiver.calls == []
        assert (await client.get("/stats")).json()["by_platform"]["facebook"]["decided"] == 0


async def test_a_failed_callback_is_retried_until_the_receiver_accepts_it(receiver):
    receiver.answers = [500]
    async with serving(make_app(policy="removed=1")) as client:
        await submit(client, callback_url=receiver.url)
        await eventually(lambda: len(receiver.calls) >= 2, what="the retried callback")
        first, second = receiver.calls
        assert first == second


async def test_a_report_without_a_callback_url_is_still_decided():
    async with serving(make_app(policy="restricted=1")) as client:
        ticket_id = (await submit(client)).json()["ticket_id"]

        async def decided():
            return (await ticket(client, ticket_id))["status"] == "decided"

        await eventually(decided, what="the ticket to be decided")
        body = await ticket(client, ticket_id)
        assert (body["outcome"], body["reason"]) == ("restricted", None)


async def test_reset_forgets_every_ticket():
    async with serving(make_app(delay=LONG_DELAY)) as client:
        ticket_id = (await submit(client)).json()["ticket_id"]
        assert (await client.post("/reset")).status_code == 204
        assert (await client.get(f"/platforms/facebook/reports/{ticket_id}")).status_code == 404
        assert (await client.get("/stats")).json()["reports"] == 0
        assert (await submit(client)).status_code == 201


async def test_health_says_ok():
    async with serving(make_app()) as client:
        assert (await client.get("/health")).json() == {"status": "ok", "service": "sandbox"}
