"""Meta decisions due together are called back in one webhook of several entries, as Meta's are:
each decision delivered once; a joined webhook the receiver refuses is split so that one entry
it cannot take holds back no other, and one that got no answer is posted again as it was."""

import asyncio
import hashlib
import hmac
import json

from fastapi import FastAPI, Request, Response

from services.sandbox.posting import JOINED_POSTS_PER_URL
from tests.integration.test_sandbox_api import make_app, sandbox_client
from tests.integration.test_sandbox_dialects import META, keyed, meta_report, token
from tests.support import eventually, serving

APP_SECRET = "sandbox-meta-app-secret"  # the sandbox's default


class HeldReceiver:
    """A callback receiver that holds every post until it is opened, then answers the statuses in
    `answers` in turn (200 once they are used up); keeps what each answered post carried."""

    def __init__(self):
        self.arrived = 0
        self.opened = asyncio.Event()
        self.answers: list[int] = []
        self.posts: list[tuple[int, list[dict]]] = []  # (status answered, entries)
        self.app = FastAPI(title="held receiver")
        self.app.add_api_route("/decisions", self._receive, methods=["POST"])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert request.headers["X-Hub-Signature-256"] == expected, "each post signed as it is sent"
        self.arrived += 1
        await self.opened.wait()
        status = self.answers.pop(0) if self.answers else 200
        self.posts.append((status, json.loads(body)["entry"]))
        return Response(status_code=status)

    def delivered(self) -> list[str]:
        """The references of the entries in posts answered 2xx, in the order taken."""
        return [e["external_reference"] for status, entries in self.posts if status < 300 for e in entries]


async def report_while_held(receiver: HeldReceiver, url: str, references: list[str]) -> None:
    """Report references to meta (decided at once): the first JOINED_POSTS_PER_URL decisions are posted
    and held, the others are due while they are; then the receiver opens."""
    async with sandbox_client(make_app(delay=0)) as client:
        auth = await token(client, "/meta/oauth/token", META)
        for i, reference in enumerate(references):
            response = await client.post("/meta/v1/reports", json=meta_report(reference, callback_url=url),
                                         headers=keyed(auth, reference))
            assert response.status_code == 201, response.text
            if i + 1 == JOINED_POSTS_PER_URL:
                async def held() -> bool:
                    return receiver.arrived == JOINED_POSTS_PER_URL

                await eventually(held, 10, "the first posts held")
        receiver.opened.set()

        async def all_delivered() -> bool:
            return len(receiver.delivered()) >= len(references)

        await eventually(all_delivered, 10, "every decision delivered")


async def test_meta_decisions_due_together_are_called_back_in_one_webhook_each_delivered_once():
    receiver, references = HeldReceiver(), [f"referral-{i}" for i in range(12)]
    async with serving(receiver.app) as url:
        await report_while_held(receiver, f"{url}/decisions", references)

    assert sorted(receiver.delivered()) == sorted(references)
    sizes = [len(entries) for _, entries in receiver.posts]
    assert sizes[:JOINED_POSTS_PER_URL] == [1] * JOINED_POSTS_PER_URL and max(sizes) > 1, sizes
    assert len(receiver.posts) < len(references)


async def test_a_joined_webhook_refused_is_posted_again_entry_by_entry_each_delivered_once():
    receiver, references = HeldReceiver(), [f"referral-{i}" for i in range(8)]
    receiver.answers = [200] * JOINED_POSTS_PER_URL + [409]  # the first joined one: a ticket not held yet
    async with serving(receiver.app) as url:
        await report_while_held(receiver, f"{url}/decisions", references)

    refused = [entries for status, entries in receiver.posts if status == 409]
    assert len(refused) == 1 and len(refused[0]) > 1
    assert sorted(receiver.delivered()) == sorted(references)
    after = receiver.posts[receiver.posts.index((409, refused[0])) + 1:]
    alone = {e["external_reference"] for status, entries in after if status < 300 and len(entries) == 1 for e in entries}
    assert {e["external_reference"] for e in refused[0]} <= alone, "each refused entry posted again alone"


class DroppingReceiver(HeldReceiver):
    """A HeldReceiver at the socket: a post whose turn is in `dropped` (counting from 0, in the order
    answered) gets no answer, its connection closed."""

    def __init__(self, dropped: set[int]):
        super().__init__()
        self.dropped, self.bodies, self.answered = dropped, [], 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.arrived += 1
                await self.opened.wait()
                turn, self.answered = self.answered, self.answered + 1
                self.bodies.append(body)
                if turn in self.dropped:
                    return
                self.posts.append((200, json.loads(body)["entry"]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def test_a_joined_webhook_that_got_no_answer_is_posted_again_as_it_was_each_delivered_once():
    receiver, references = DroppingReceiver(dropped={JOINED_POSTS_PER_URL}), [f"referral-{i}" for i in range(8)]
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        await report_while_held(receiver, f"http://127.0.0.1:{port}/decisions", references)

    dropped = receiver.bodies[JOINED_POSTS_PER_URL]
    assert len(json.loads(dropped)["entry"]) > 1
    assert dropped in receiver.bodies[JOINED_POSTS_PER_URL + 1:], "the same bytes posted again"
    assert sorted(receiver.delivered()) == sorted(references)
