"""What an HTTP client costs the dispatcher per request: requests/s and CPU ms per request of this
process (the client alone: the sandbox runs in a process of its own), for each client the adapters
could use, on uvloop as the services run.

Each request is a webhook report as the adapter posts it (a ~400-byte signed JSON body, a JSON
answer), BENCH_IN_FLIGHT (32) at once, as a lane with that cap on deliveries in flight; every
report carries the same Idempotency-Key, so the sandbox answers with the first ticket and opens no
more. aiohttp is measured when it is importable.

    PYTHONPATH=. python -m bench.http_clients       (BENCH_REQUESTS=3000, BENCH_IN_FLIGHT=32)
"""

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import uvloop

from bench.common import env_int
from bench.stack import bench_env
from services.dispatcher.adapters.webhook import WebhookConfig
from services.supervisor import Stack
from shared import webhooks
from shared.embedded import free_port, wait_until

PATH = "/platforms/other/reports"
Post = Callable[[bytes, dict[str, str]], Awaitable[int]]


def report() -> tuple[bytes, Callable[[], dict[str, str]]]:
    """The body of a report, and its headers made anew for each request (a new webhook-id each)."""
    body = json.dumps({"platform": "other", "reference": "5b0c7a4e-0f7c-4f3e-9d55-9f4a3f1f1b11",
                       "url": "https://other.example/post/1", "category": "people_smuggling", "agency": "NCA",
                       "case_reference": "OP-1", "notes": None,
                       "callback_url": "http://127.0.0.1:9/v1/callbacks/other"}, separators=(",", ":")).encode()
    secret = WebhookConfig().secret.get_secret_value()

    def headers() -> dict[str, str]:
        return {"Idempotency-Key": "bench-http-clients", "Content-Type": "application/json",
                **webhooks.sign([secret], body, webhooks.new_message_id(), int(time.time()))}

    return body, headers


async def measure(post: Post, requests: int, in_flight: int) -> dict:
    """requests/s and CPU ms per request of this process, `in_flight` requests at once (after a warm-up)."""
    body, headers = report()
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            status = await post(body, headers())
            assert status in (200, 201), status

    left[0] = in_flight * 4  # warm-up: connections opened, code paths warm
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    left[0] = requests
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"requests_per_s": round(requests / wall), "cpu_ms_per_request": round(1000 * cpu / requests, 3)}


async def httpx_client(stack: AsyncExitStack, url: str, in_flight: int, pooled: bool) -> Post:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight) if pooled else \
        httpx.Limits()
    client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10, limits=limits))

    async def post(body: bytes, headers: dict[str, str]) -> int:
        return (await client.post(PATH, content=body, headers=headers)).status_code

    return post


async def aiohttp_client(stack: AsyncExitStack, url: str, in_flight: int) -> Post:
    import aiohttp

    session = await stack.enter_async_context(aiohttp.ClientSession(
        base_url=url, connector=aiohttp.TCPConnector(limit=in_flight), timeout=aiohttp.ClientTimeout(total=10)))

    async def post(body: bytes, headers: dict[str, str]) -> int:
        async with session.post(PATH, data=body, headers=headers) as response:
            await response.read()
            return response.status

    return post


async def run_all(url: str, requests: int, in_flight: int) -> dict:
    clients = {"httpx (as the adapters had it: default pool of 100)":
               lambda s: httpx_client(s, url, in_flight, pooled=False),
               f"httpx, pool = the in-flight cap ({in_flight})": lambda s: httpx_client(s, url, in_flight, pooled=True)}
    try:
        import aiohttp  # noqa: F401 - measured only where installed
        clients[f"aiohttp, connector limit {in_flight}"] = lambda s: aiohttp_client(s, url, in_flight)
    except ImportError:
        print("aiohttp is not installed: not measured")
    figures = {}
    for name, make in clients.items():
        async with AsyncExitStack() as stack:
            figures[name] = await measure(await make(stack), requests, in_flight)
        print(f"  {name:<55} {figures[name]['requests_per_s']:>6} requests/s "
              f"{figures[name]['cpu_ms_per_request']:>7} CPU ms/request")
    return figures


def main() -> None:
    requests, in_flight = env_int("BENCH_REQUESTS", 3000), env_int("BENCH_IN_FLIGHT", 32)
    with tempfile.TemporaryDirectory(prefix="takedown-bench-http-") as tmp:
        env = bench_env(Path(tmp), 1, SANDBOX_PORT=str(free_port()), LOG_LEVEL="WARNING")
        stack = Stack(Path(tmp) / "stack", env=env)
        (stack.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        stack.env.setdefault("SANDBOX_STATE_FILE", str(stack.data_dir / "sandbox" / "state.db"))
        try:
            stack.spawn("sandbox")
            wait_until(lambda: stack.healthy("sandbox"), 60, "the sandbox to be healthy")
            print(f"http clients: {requests} webhook reports, {in_flight} at once, against the sandbox")
            uvloop.run(run_all(stack.url("sandbox"), requests, in_flight))
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main()
