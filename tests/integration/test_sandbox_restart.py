"""A sandbox with a state file, stopped and started again (a second app from the same settings), still
knows its tickets: it answers their status, returns the first ticket for a replayed Idempotency-Key,
decides what it had open and calls back what it had not called back yet."""

import contextlib
import json
import sqlite3
from urllib.parse import quote

from services.sandbox.domain import AFTER_INFORMATION
from tests.integration.test_sandbox_answers import credentials, status_of, view
from tests.integration.test_sandbox_api import LONG_DELAY, make_app, sandbox_client
from tests.integration.test_sandbox_dialects import (DIALECTS, TIKTOK_KEY, keyed, post_report, ticket_id_of,
                                                      tiktok_report, youtube_flag)
from tests.support import eventually

CALLS_BACK = ("meta", "x", "webhook")
OPEN_FOR_S = 2.0  # long enough for the first app to stop with every ticket open, short enough to wait for


def settings(tmp_path, **overrides) -> dict:
    return {"sandbox_state_file": tmp_path / "sandbox" / "state.db", **overrides}


async def decided(client, dialect: str, ticket_id: str) -> dict:
    async def check():
        body = view(dialect, await status_of(client, dialect, ticket_id))
        return body if body["status"] == "decided" else None

    return await eventually(check, 10, f"{dialect} ticket {ticket_id} to be decided")


async def test_a_restarted_sandbox_answers_for_tickets_reported_before_and_returns_them_for_their_keys(tmp_path):
    async with sandbox_client(make_app(delay=LONG_DELAY, **settings(tmp_path))) as client:
        first = {d: ticket_id_of((await post_report(client, d)).json()) for d in DIALECTS}
        stats_before = (await client.get("/stats")).json()

    async with sandbox_client(make_app(delay=LONG_DELAY, **settings(tmp_path))) as client:
        assert (await client.get("/stats")).json() == stats_before
        for dialect, ticket_id in first.items():
            assert view(dialect, await status_of(client, dialect, ticket_id))["status"] == "open", dialect
            replayed = await post_report(client, dialect)
            assert replayed.status_code == 200 and ticket_id_of(replayed.json()) == ticket_id, dialect
        stats = (await client.get("/stats")).json()
        assert (stats["reports"], stats["duplicates"]) == (len(DIALECTS), len(DIALECTS))


async def test_tickets_left_open_are_decided_after_the_restart_and_called_back(tmp_path, receiver):
    app_settings = settings(tmp_path, delay=OPEN_FOR_S)
    async with sandbox_client(make_app(**app_settings)) as client:
        opened = {d: ticket_id_of((await post_report(client, d, callback_url=receiver.url)).json()) for d in DIALECTS}
        for dialect, ticket_id in opened.items():
            assert view(dialect, await status_of(client, dialect, ticket_id))["status"] == "open", dialect

    async with sandbox_client(make_app(**app_settings)) as client:
        for dialect, ticket_id in opened.items():
            assert (await decided(client, dialect, ticket_id))["decision"]["visibility"] == ["content_removed"]
        await receiver.wait_for(len(CALLS_BACK))
    assert len(receiver.calls) == len(CALLS_BACK)


async def test_a_decision_the_receiver_did_not_take_is_called_back_after_the_restart_and_not_after_the_next(
        tmp_path, receiver):
    app_settings = settings(tmp_path, delay=0.05)
    receiver.answers = [503] * 1000  # the dispatcher's database is down until the platform restarts
    async with sandbox_client(make_app(**app_settings)) as client:
        ticket_id = ticket_id_of((await post_report(client, "webhook", callback_url=receiver.url)).json())
        await receiver.wait_for(1)

    receiver.answers = []
    refused = len(receiver.calls)
    async with sandbox_client(make_app(**app_settings)) as client:
        await receiver.wait_for(refused + 1)
        body = json.loads(receiver.calls[-1][1])
        assert (body["ticket_id"], body["decision"]["visibility"]) == (ticket_id, ["content_removed"])

    app = make_app(**app_settings)
    async with sandbox_client(app):
        assert app.state.sandbox.tasks == set(), "delivered: nothing to call back after another restart"


async def test_an_answer_given_before_the_restart_is_kept_and_decides_the_question_after_it(tmp_path):
    app_settings = settings(tmp_path, policy="information_request=1", delay=OPEN_FOR_S / 2)
    async with sandbox_client(make_app(**app_settings)) as client:
        flag_id = ticket_id_of((await post_report(client, "youtube")).json())

        async def asked():
            return view("youtube", await status_of(client, "youtube", flag_id))["status"] == "information_requested"

        await eventually(asked, 10, "the question")
        answered = await client.post(f"/youtube/v1/flags/{flag_id}/responses", headers={
            **await credentials(client, "youtube"), "Idempotency-Key": "answer-1"},
            json={"flagger_reference": "referral-1", "response_text": "s.2", "evidence_hashes": []})
        assert answered.status_code == 201
        assert view("youtube", await status_of(client, "youtube", flag_id))["status"] == "information_requested"

    async with sandbox_client(make_app(**app_settings)) as client:
        assert (await decided(client, "youtube", flag_id))["decision"]["visibility"] == ["content_removed"]
        ticket = (await client.get(f"/platforms/youtube/reports/{flag_id}")).json()
        assert (ticket["outcome"], [a["text"] for a in ticket["answers"]]) == (AFTER_INFORMATION, ["s.2"])


async def test_content_taken_down_stays_down_and_a_reset_is_forgotten_across_restarts(tmp_path):
    app_settings = settings(tmp_path, delay=0.05)
    url = quote(youtube_flag()["video_url"], safe="")
    async with sandbox_client(make_app(**app_settings)) as client:
        await decided(client, "youtube", ticket_id_of((await post_report(client, "youtube")).json()))
        assert (await client.get(f"/content?url={url}")).status_code == 410

    async with sandbox_client(make_app(**app_settings)) as client:
        assert (await client.get(f"/content?url={url}")).status_code == 410
        await client.post("/reset")

    async with sandbox_client(make_app(**app_settings)) as client:
        assert (await client.get("/stats")).json()["reports"] == 0
        assert (await client.get(f"/content?url={url}")).status_code == 200


async def test_a_report_and_its_decision_are_in_the_state_file_before_its_answer_starts_to_go_out(tmp_path):
    app_settings = settings(tmp_path, delay=0)  # decided as it is taken
    body = json.dumps(tiktok_report()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in keyed(TIKTOK_KEY).items())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/tiktok/v1/reports", "raw_path": b"/tiktok/v1/reports", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("sandbox", 80)}
    on_file_as_answered: list[tuple[int, list]] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":  # another reader of the file, as a restarted sandbox is
            with contextlib.closing(sqlite3.connect(app_settings["sandbox_state_file"])) as db:
                rows = [json.loads(b)["status"] for (b,) in db.execute("SELECT body FROM tickets")]
            on_file_as_answered.append((message["status"], rows))

    app = make_app(**app_settings)
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert on_file_as_answered == [(201, ["decided"])]
