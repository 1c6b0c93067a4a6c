"""Helpers for tests: wait for conditions with deadlines, serve apps, read topics."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request, Response

from shared import auth, db
from shared.auth import signing
from shared.auth.records import signed_headers
from shared.embedded import free_port


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for token."""
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "condition",
                     interval: float = 0.05) -> Any:
    """Await check() until it returns something truthy; fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {last!r}")


@asynccontextmanager
async def serving(app: FastAPI, port: int | None = None, **options: Any):
    """Serve app (lifespan included) on a free port; yield its base URL. options go to uvicorn (ssl_certfile=...)."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on", **options))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError(f"{app.title} stopped while starting")
        return server.started

    await eventually(started, 60, f"{app.title} to start")
    try:
        yield f"{'https' if 'ssl_certfile' in options else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None,
                  headers: dict[str, str | bytes] | None = None, timestamp_ms: int | None = None) -> None:
    """Publish one record with a plain aiokafka producer, as an agency system would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, timestamp_ms=timestamp_ms,
                                     headers=[(k, v.encode() if isinstance(v, str) else v)
                                              for k, v in (headers or {}).items()])
    finally:
        await producer.stop()


async def produce_signed(bootstrap: str, topic: str, value: bytes, agency: str, secret: str,
                         key: bytes | None = None, **signing_options) -> dict[str, str]:
    """Publish one record signed as agency's, as an agency system would; the headers it carried."""
    headers = signed_headers(agency, secret, value, **signing_options)
    await produce(bootstrap, topic, value, key=key, headers=headers)
    return headers


async def create_signing_secrets(database_url: str, agencies: tuple[str, ...]) -> dict[str, str]:
    """Migrate the auth schema and give each agency a signing secret: agency -> secret."""
    await db.migrate(database_url, auth.MIGRATIONS, auth.SCHEMA)
    engine = db.make_engine(database_url)
    try:
        async with db.make_sessions(engine)() as session, session.begin():
            return {agency: await signing.create(session, agency, "tests") for agency in agencies}
    finally:
        await engine.dispose()


class TopicReader:
    """Reads every record of a topic from the beginning, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic, self.records = topic, []
        self.consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         enable_auto_commit=False, group_id=None)

    async def __aenter__(self) -> "TopicReader":
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def wait_for(self, predicate: Callable[[list], bool], timeout: float = 20, what: str = "records") -> list:
        """Collect records until predicate(records) holds; return them."""

        async def poll() -> bool:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.records.extend(records)
            return predicate(self.records)

        await eventually(poll, timeout, f"{what} on {self.topic}", interval=0)
        return self.records


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


class Receiver:
    """A decision endpoint that records every callback (headers and raw body) and answers scripted statuses."""

    def __init__(self):
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []  # answered in turn; 200 once used up
        self.url = ""
        self.app = FastAPI(title="callback receiver")
        self.app.add_api_route("/decisions", self._receive, methods=["POST"])

    async def _receive(self, request: Request) -> Response:
        self.calls.append((dict(request.headers), await request.body()))
        return Response(status_code=self.answers.pop(0) if self.answers else 200)

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.calls]

    async def wait_for(self, count: int = 1, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        async def arrived():
            return len(self.calls) >= count

        await eventually(arrived, timeout, f"{count} callback(s)")
        return self.calls


def busiest(times: list[float], window: float) -> int:
    """Most of `times` (seconds) in any window of `window` seconds: what a rate limit must bound."""
    times, most, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def answers_health(base_url: str) -> bool:
    """Whether a service answers GET /health at base_url with 200 (not reachable: False)."""
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base_url}/health", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False
