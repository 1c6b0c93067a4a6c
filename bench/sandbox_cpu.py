"""The sandbox's own CPU per report, dialect by dialect: it stands in for the platforms in every
benchmark, on the same cores, so what it spends is taken from the system measured.

Starts the sandbox as `takedown sandbox` does (its state file included, as `takedown run` sets
one) with the benchmark's personas (bench/stack.py: decide at once, every report removed), and a
callback sink in a process of its own (bench/callback_sink.py). For each dialect it sends
SANDBOX_BENCH_N reports (2000), SANDBOX_BENCH_CONCURRENCY at once (32), paced at
SANDBOX_BENCH_RATE reports/s when set, and waits for every decision: its callback at the sink
(meta, x, webhook), one poll (youtube) or the report's own answer (tiktok). Prints reports/s and the
sandbox's CPU (utime + stime from /proc) per report.

    PYTHONPATH=. python -m bench.sandbox_cpu [dialect ...]
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import env_float, env_int
from bench.procs import TICKS, cpu_ticks
from bench.stack import PERSONAS
from shared import webhooks
from shared.embedded import free_port, wait_until

DIALECTS = ("meta", "x", "youtube", "tiktok", "webhook")
WEBHOOK_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA=="  # the sandbox's default
# A new connection each time: none is left idle for the sink to close as it is reused.
SINK = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)
TOKENS = {"meta": ("/meta/oauth/token", "sandbox-meta", "sandbox-meta-secret"),
          "x": ("/x/oauth2/token", "sandbox-x", "sandbox-x-secret")}


def report_request(dialect: str, ref: str, sink: str) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of one report in dialect's shape, as the dispatcher's adapters send it."""
    if dialect == "meta":
        path, body = "/meta/v1/reports", {
            "surface": "facebook", "content_url": f"https://facebook.com/groups/{ref}",
            "violation_type": "human_exploitation", "external_reference": ref,
            "reporter": {"organization": "NCA", "case_number": "OP-7"}, "evidence_hashes": ["ab" * 32],
            "callback_url": f"{sink}/v1/callbacks/facebook"}
    elif dialect == "x":
        path, body = "/x/2/reports", {"url": f"https://x.com/s/{ref}", "policy": "people_smuggling",
                                      "reporter_reference": ref, "callback_url": f"{sink}/v1/callbacks/x"}
    elif dialect == "youtube":
        path, body = "/youtube/v1/flags", {"video_url": f"https://www.youtube.com/watch?v={ref}",
                                           "reason_code": "PEOPLE_SMUGGLING", "flagger_reference": ref,
                                           "notes": "Advertises crossings."}
    elif dialect == "tiktok":
        path, body = "/tiktok/v1/reports", {"link": f"https://www.tiktok.com/@s/video/{ref}", "category": "fraud",
                                            "reference": ref}
    else:
        path, body = "/platforms/other/reports", {
            "platform": "other", "reference": ref, "url": f"https://forum.example/{ref}",
            "category": "people_smuggling", "agency": "NCA", "case_reference": "OP-7", "notes": None,
            "callback_url": f"{sink}/v1/callbacks/other"}
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": ref}
    if dialect in ("youtube", "tiktok"):
        headers["X-Api-Key"] = f"sandbox-{dialect}-key"
    if dialect == "webhook":
        headers.update(webhooks.sign([WEBHOOK_SECRET], raw, webhooks.new_message_id(), int(time.time())))
    return path, raw, headers


async def bearer(client: httpx.AsyncClient, dialect: str) -> dict[str, str]:
    if dialect not in TOKENS:
        return {}
    path, client_id, secret = TOKENS[dialect]
    answer = await client.post(path, data={"grant_type": "client_credentials", "client_id": client_id,
                                           "client_secret": secret})
    return {"Authorization": f"Bearer {answer.raise_for_status().json()['access_token']}"}


class Connection:
    """One keep-alive HTTP/1.1 connection, requests one at a time: far cheaper than a general client, so
    the load generator leaves the cores to the sandbox measured."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
                      ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        payload = await self.reader.readexactly(int(fields.get("content-length", "0")))
        status = int(head[0].split()[1])
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {payload[:200]!r}")
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def one(conn: Connection, dialect: str, ref: str, sink: str, auth: dict[str, str]) -> None:
    path, raw, headers = report_request(dialect, ref, sink)
    _, answer = await conn.request("POST", path, raw, {**headers, **auth})
    if dialect == "youtube":  # polled: the dispatcher asks once the decision is due
        flag_id = json.loads(answer)["flag_id"]
        await conn.request("GET", f"/youtube/v1/flags/{flag_id}", headers={"X-Api-Key": headers["X-Api-Key"]})


async def sink_count(sink: str) -> dict[str, int]:
    return (await SINK.get(f"{sink}/count")).json()


async def drive(base: str, dialect: str, sink: str, n: int, concurrency: int, rate: float) -> None:
    """n reports of dialect, over concurrency connections, paced at rate per second (0: as fast as they go)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        auth = await bearer(client, dialect)
    host, port = base.removeprefix("http://").split(":")
    idle = asyncio.Queue()
    for _ in range(concurrency):
        idle.put_nowait(Connection(host, int(port)))
    run, started, tasks = uuid.uuid4().hex[:8], time.monotonic(), []

    async def send(conn: Connection, i: int) -> None:
        await one(conn, dialect, f"{run}-{i}", sink, auth)
        idle.put_nowait(conn)

    for i in range(n):
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(send(await idle.get(), i)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()


async def callbacks_in(sink: str, before: int, n: int, dialect: str) -> None:
    """Wait until n more answers reached the sink than before."""
    deadline = time.monotonic() + 120
    while (await sink_count(sink))["answers"] - before < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dialect}: callbacks missing at the sink")
        await asyncio.sleep(0.01)


async def measure(dialect: str, pid: int, base: str, sink: str) -> dict:
    n, concurrency = env_int("SANDBOX_BENCH_N", 2000), env_int("SANDBOX_BENCH_CONCURRENCY", 32)
    before, ticks, started, own = await sink_count(sink), cpu_ticks(pid), time.monotonic(), time.process_time()
    await drive(base, dialect, sink, n, concurrency, env_float("SANDBOX_BENCH_RATE", 0))
    if dialect in ("meta", "x", "webhook"):
        await callbacks_in(sink, before["answers"], n, dialect)
    seconds, spent = time.monotonic() - started, (cpu_ticks(pid) - ticks) / TICKS
    own = time.process_time() - own
    posts = (await sink_count(sink))["posts"] - before["posts"]
    return {"dialect": dialect, "reports": n, "seconds": round(seconds, 2), "reports_per_s": round(n / seconds),
            "cpu_ms_per_report": round(spent * 1000 / n, 3), "cores": round(spent / seconds, 2),
            "callback_posts": posts, "driver_cpu_ms_per_report": round(own * 1000 / n, 3)}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main(dialects: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="sandbox-cpu-") as tmp:
        personas, port, sink_port = Path(tmp) / "personas.json", free_port(), free_port()
        personas.write_text(json.dumps(PERSONAS))
        env = {**os.environ, "SANDBOX_PORT": str(port), "SANDBOX_PERSONAS": str(personas),
               "SANDBOX_POLICY": "removed=1", "SANDBOX_DECISION_DELAY_S": "0", "LOG_LEVEL": "WARNING",
               "SANDBOX_STATE_FILE": str(Path(tmp) / "state.db")}
        log = Path(tmp) / "processes.log"
        sink = start(["-m", "bench.callback_sink", str(sink_port)], env, log)
        sandbox = start(["-m", "services.cli", "sandbox"], env, log)
        try:
            base, sink_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sink_port}"
            wait_until(lambda: healthy(f"{base}/health") and healthy(f"{sink_url}/count"), 30, "sandbox and sink")
            for dialect in dialects:
                print(json.dumps(asyncio.run(measure(dialect, sandbox.pid, base, sink_url))), flush=True)
        finally:
            for process in (sandbox, sink):
                process.terminate()
                process.wait(10)
            problems = [line for line in log.read_text().splitlines() if " WARNING " in line or " ERROR " in line]
            if problems or sandbox.returncode not in (0, -15):
                print(f"{len(problems)} warnings and errors logged, the last:", *problems[-5:], sep="\n",
                      file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:] or list(DIALECTS))
