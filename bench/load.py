"""The load generator: an agency referring items at a steady rate, over the batch API and onto
referrals.inbound at once.

Each path is paced on its own clock: every tick (a few ms) it sends what is due by then, so the
rate is steady rather than bursty, and it falls behind (which its achieved rate shows) only when
intake or the broker cannot take more. HTTP batches go out concurrently (a bounded number in
flight); Kafka records through one aiokafka producer (acks=all, linger 2 ms). A gate may hold a
path back, e.g. to keep the referrals not yet decided below a window. A batch answered 429 is sent
again, the same batch with the same idempotency keys, after the Retry-After it was given (while it
waits it holds its slot: a throttled agency slows down); the 429s are counted.
"""

import asyncio
import json
import time
from email.utils import parsedate_to_datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaProducer

from bench.records import PLATFORM_URLS as URLS
from shared import topics
from shared.auth.records import signed_headers

PLATFORMS = tuple(URLS)  # facebook (callback), x (callback), tiktok (in the answer), youtube (polled)
TAKEN = (201, 202)  # intake's answers to a batch it stored


def retry_after(value: str | None, default: float = 1.0, most: float = 60.0) -> float:
    """Seconds to wait before sending again, from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return min(max(seconds, 0.0), most)


@dataclass
class Channel:
    """One way in: what it sent, what was acknowledged (202 / the broker's ack), and how long that took."""

    name: str
    sent: int = 0
    acked: int = 0
    failed: int = 0
    throttled: int = 0  # 429 answers (each batch sent again after its Retry-After)
    throttled_wait_s: float = 0.0  # Retry-After waited, summed over batches
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds to the acknowledgement)
    late_ticks: int = 0  # ticks that found the loop more than a tick behind its schedule

    def summary(self, seconds: float) -> dict:
        return {"sent": self.sent, "acknowledged": self.acked, "failed": self.failed, "throttled_429": self.throttled,
                "throttled_wait_s": round(self.throttled_wait_s, 1),
                "achieved_per_s": round(self.sent / seconds, 1) if seconds else None, "late_ticks": self.late_ticks}


class Agency:
    def __init__(self, intake: str, bootstrap: str, run: str, identity: dict, keep_times: bool = False,
                 http_in_flight: int = 16, agency: str = "NCA", retry_for_s: float = 300):
        """identity: the agency's demo credentials (token, signing_secret), as `takedown run` writes them."""
        self.intake, self.bootstrap, self.run = intake, bootstrap, run
        self.agency, self.token, self.secret = agency, identity["token"], identity["signing_secret"]
        self.case_reference = f"BENCH-{run}"
        self.keep_times, self.retry_for_s = keep_times, retry_for_s  # how long a throttled batch is retried
        self.sent_at: dict[str, float] = {}  # idempotency key -> client clock just before sending
        self.http_ids: set[str] = set()  # referral ids intake accepted over HTTP
        self.paths = {"http": Channel("http"), "kafka": Channel("kafka")}
        self._slots = asyncio.Semaphore(http_in_flight)
        self._posts: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None
        self.producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> "Agency":
        self.client = httpx.AsyncClient(base_url=self.intake, timeout=60,
                                        headers={"Authorization": f"Bearer {self.token}"},
                                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=2,
                                         max_batch_size=256 * 1024)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.gather(*self._posts, return_exceptions=True)
        if self.producer:
            await self.producer.stop()
        if self.client:
            await self.client.aclose()

    def item(self, n: int, path: str) -> dict:
        key = f"{self.run}-{path[0]}{n}"
        url = URLS[PLATFORMS[n % len(PLATFORMS)]].format(key=key, n=10**9 + n + (0 if path == "http" else 10**8))
        return {"url": url, "category": "people_smuggling", "idempotency_key": key,
                "case_reference": self.case_reference}

    async def refer(self, rates: dict[str, float], seconds: float, ticks: dict[str, float] | None = None,
                    most: int = 1000, gate: Callable[[str], int] | None = None) -> dict:
        """Send at rates[path] per second for seconds, every ticks[path] seconds (10 ms unless given),
        at most `most` at a time; what each path achieved."""
        started = time.monotonic()
        ticks = ticks or {}
        await asyncio.gather(*(self._paced(p, rate, seconds, ticks.get(p, 0.01), most, gate)
                               for p, rate in rates.items()))
        await asyncio.gather(*self._posts, return_exceptions=True)
        if self.producer:
            await self.producer.flush()
        elapsed = time.monotonic() - started
        return {"seconds": round(elapsed, 2), **{p: self.paths[p].summary(elapsed) for p in rates}}

    async def _paced(self, path: str, rate: float, seconds: float, tick_s: float, most: int, gate) -> None:
        stats, start = self.paths[path], time.monotonic()
        sent_by_schedule = 0
        while (now := time.monotonic()) < start + seconds:
            due = int(rate * (now - start)) - sent_by_schedule
            if due > 2 * most:  # too far behind to catch up: offer what we can, not a burst
                stats.late_ticks += 1
                sent_by_schedule += due - most
                due = most
            room = gate(path) if gate else due
            count = max(min(due, most, room), 0)
            if count:
                first = stats.sent
                await (self._post if path == "http" else self._produce)([self.item(first + i, path)
                                                                         for i in range(count)])
                sent_by_schedule += count
            elif due > 0 and gate:  # held back by the gate: the schedule does not build up a debt
                sent_by_schedule += due
            await asyncio.sleep(max(tick_s - (time.monotonic() - now), 0))

    async def _post(self, items: list[dict]) -> None:
        await self._slots.acquire()
        self.paths["http"].sent += len(items)
        task = asyncio.create_task(self._send_batch(items))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _send_batch(self, items: list[dict]) -> None:
        stats = self.paths["http"]
        body = json.dumps({"referrals": items}).encode()
        sent = time.time()
        if self.keep_times:
            self.sent_at.update((item["idempotency_key"], sent) for item in items)
        try:
            response = await self._post_until_taken(body)
            if response.status_code not in TAKEN:
                stats.failed += len(items)
                return
            stats.acks.append((sent, time.time() - sent))
            for result in response.json()["results"]:
                if result["status"] in ("accepted", "duplicate"):
                    stats.acked += 1
                    self.http_ids.add(result["referral_id"])
                else:
                    stats.failed += 1
        except httpx.HTTPError:
            stats.failed += len(items)
        finally:
            self._slots.release()

    async def _post_until_taken(self, body: bytes) -> httpx.Response:
        """POST a batch; while it is answered 429, wait its Retry-After and send it again (for at most
        retry_for_s); the last answer."""
        stats, give_up = self.paths["http"], time.monotonic() + self.retry_for_s
        while True:
            response = await self.client.post("/v1/referrals/batch", content=body,
                                              headers={"content-type": "application/json"})
            if response.status_code != 429 or time.monotonic() > give_up:
                return response
            stats.throttled += 1
            wait = retry_after(response.headers.get("retry-after"))
            stats.throttled_wait_s += wait
            await asyncio.sleep(wait)

    async def _produce(self, items: list[dict]) -> None:
        stats = self.paths["kafka"]
        for item in items:
            key = item["idempotency_key"]
            sent = time.time()
            if self.keep_times:
                self.sent_at[key] = sent
            value = json.dumps(item).encode()
            headers = [(k, v.encode()) for k, v in signed_headers(self.agency, self.secret, value).items()]
            future = await self.producer.send(topics.REFERRALS_INBOUND, value, key=key.encode(), headers=headers)
            stats.sent += 1
            future.add_done_callback(lambda f, t=sent: self._kafka_acked(f, t))

    def _kafka_acked(self, future: asyncio.Future, sent: float) -> None:
        stats = self.paths["kafka"]
        if future.cancelled() or future.exception() is not None:
            stats.failed += 1
            return
        stats.acked += 1
        stats.acks.append((sent, time.time() - sent))
