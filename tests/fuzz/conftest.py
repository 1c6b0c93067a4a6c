"""One whole takedown stack for the fuzz suite, started once for the package.

Every service is served by uvicorn in a thread of its own (its own event loop), on one embedded
broker and one database of the session's Postgres: the fuzzers are plain synchronous code
(Hypothesis and schemathesis drive them) and the services keep running between examples.
The database holds the demo identities; the fuzzers call each route as an identity allowed to,
or every answer would be a 401.
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
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from services.outcomes.app import create_app as create_outcomes
from services.outcomes.config import OutcomesSettings
from services.sandbox.app import create_app as create_sandbox
from tests.seed import fresh_database
from services.sandbox.config import SandboxSettings
from shared.auth import Role, demo, keys
from shared.embedded import EmbeddedKafka, free_port
from tests.conftest import FAST_GROUPS
from tests.support import bearer

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


def caller_of(service: str, path: str = "") -> str | None:
    """The demo identity the fuzzers call path of service as: one its guard lets in, None where no
    identity is asked for (the sandbox, and the dispatcher but for its manual answers)."""
    if service == "intake":
        return "NCA"
    if service == "outcomes":
        return "oversight" if path.startswith("/v1/auditor-queries") else "auditor"
    if service == "dispatcher" and path.endswith("/answer"):
        return "operator"
    return None


@dataclass
class Stack:
    kafka: str
    database_url: str
    credentials: dict = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str | None) -> dict[str, str]:
        """The Authorization header of a demo identity: an agency (NCA, BorderForce) or a person's
        role (auditor, operator, oversight); none for None."""
        if who is None:
            return {}
        agencies = self.credentials["agencies"]
        return bearer(agencies[who]["token"] if who in agencies else self.credentials[who]["token"])

    def signed_in(self, service: str, path: str = "") -> dict[str, str]:
        """The Authorization header to call path of service with (see caller_of)."""
        return self.headers(caller_of(service, path))

    def client(self, service: str, who: str | None = None, **options) -> httpx.Client:
        """A client of service, signed in as who, or as the identity its routes are for (caller_of);
        headers given are laid over that."""
        headers = {**self.headers(who or caller_of(service)), **options.pop("headers", {})}
        return httpx.Client(base_url=self.urls[service], timeout=60, headers=headers, **options)

    def agency_key(self, agency: str) -> dict[str, str]:
        """The Authorization header of a new API key of agency, made in the stack's database."""
        async def create() -> str:
            engine = create_async_engine(self.database_url, poolclass=pool.NullPool)
            try:
                async with async_sessionmaker(engine)() as session, session.begin():
                    return (await keys.create(session, Role.agency, None, agency, "fuzz")).token
            finally:
                await engine.dispose()

        return bearer(asyncio.run(create()))


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
        running.credentials = demo.ensure(running.database_url, tmp_path_factory.mktemp("fuzz-auth") / demo.FILE)
        ports = {name: free_port() for name in (*SERVICES, "smtp")}
        with ExitStack() as servers:
            for name, app in apps(running.kafka, running.database_url, ports).items():
                running.urls[name] = servers.enter_context(served_in_thread(app, ports[name]))
            yield running
    finally:
        broker.stop()
