"""One whole takedown stack for the fuzz suite, started once for the package.

Every service is served by uvicorn in a thread of its own (its own event loop), on one embedded
broker and one database of the session's Postgres: the fuzzers are plain synchronous code
(Hypothesis and schemathesis drive them) and the services keep running between examples.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from services.outcomes.app import create_app as create_outcomes
from services.outcomes.config import OutcomesSettings
from services.sandbox.app import create_app as create_sandbox
from tests.seed import fresh_database
from services.sandbox.config import SandboxSettings
from shared.embedded import EmbeddedKafka, free_port
from tests.conftest import FAST_GROUPS

SERVICES = ("sandbox", "intake", "dispatcher", "outcomes")
# The services' own threads draw from `random` (backoff jitter, the sandbox's fates) while
# Hypothesis generates; it takes that for a strategy using `random` and warns.
THREADS_USE_RANDOM = pytest.mark.filterwarnings("ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(THREADS_USE_RANDOM)


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll check() until it is truthy; fail naming what we waited for (sync twin of eventually)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def served_in_thread(app: FastAPI, port: int) -> Iterator[str]:
    """Serve app (lifespan included) from a thread with its own event loop; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name=app.title, daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError(f"{app.title} stopped while starting; see the log")
        return server.started

    wait_until(started, 90, f"{app.title} to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@dataclass
class Stack:
    kafka: str
    database_url: str
    urls: dict[str, str] = field(default_factory=dict)

    def client(self, service: str, **options) -> httpx.Client:
        return httpx.Client(base_url=self.urls[service], timeout=60, **options)


def apps(kafka: str, database_url: str, ports: dict[str, int]) -> dict[str, FastAPI]:
    """Each service built as `takedown run` builds it, the sandbox standing in for the platforms."""
    common = {"kafka_bootstrap_servers": kafka, "database_url": database_url, **FAST_GROUPS}
    sandbox_url = f"http://127.0.0.1:{ports['sandbox']}"
    return {
        "sandbox": create_sandbox(SandboxSettings(sandbox_decision_delay_s=0.2, sandbox_smtp_port=ports["smtp"])),
        "intake": create_intake(IntakeSettings(**common)),
        "dispatcher": create_dispatcher(DispatcherSettings(
            **common, sandbox_url=sandbox_url, dispatcher_callback_base_url=f"http://127.0.0.1:{ports['dispatcher']}",
            adapters={"telegram": {"smtp_port": ports["smtp"]}}, poll_interval_s=0.5)),
        "outcomes": create_outcomes(OutcomesSettings(**common, content_check_url=sandbox_url + "/content?url={url}",
                                                     fetch_allow=[f"127.0.0.1:{ports['sandbox']}"])),
    }


@pytest.fixture(scope="package")
def stack(postgres_server, tmp_path_factory) -> Iterator[Stack]:
    """Sandbox, intake, dispatcher and outcomes, served on one broker and one database."""
    broker = EmbeddedKafka(port=free_port(), log_file=tmp_path_factory.mktemp("fuzz-kafka") / "tansu.log")
    broker.start()
    try:
        running = Stack(broker.bootstrap_servers, fresh_database(postgres_server))
        ports = {name: free_port() for name in (*SERVICES, "smtp")}
        with ExitStack() as servers:
            for name, app in apps(running.kafka, running.database_url, ports).items():
                running.urls[name] = servers.enter_context(served_in_thread(app, ports[name]))
            yield running
    finally:
        broker.stop()
