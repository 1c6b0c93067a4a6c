"""Real servers for the tests: embedded Postgres once per session, Tansu per need.

Postgres is started once per session and each test gets a database of its own. Tansu (memory
storage) starts in about 50 ms, so each integration test gets a clean broker of its own:
consumer groups and topics never leak from one test into the next.
"""

from pathlib import Path

import pytest

from shared.auth import demo
from shared.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from tests.seed import fresh_database
from tests.support import Receiver, create_signing_secrets, serving

# Groups here have one member: a short session makes the first join take ~1 s, not 5.
FAST_GROUPS = {"kafka_session_timeout_ms": 2000, "kafka_heartbeat_interval_ms": 500, "topic_partitions": 3}
AGENCIES = ("NCA", "Europol", "Border Force")  # the agencies signing_secrets gives a secret


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    server.start()
    yield server.server.get_postmaster_info()
    server.stop()


@pytest.fixture
def database_url(postgres_server) -> str:
    """A fresh, empty database on the session's Postgres server."""
    return fresh_database(postgres_server)


@pytest.fixture
def kafka(tmp_path) -> str:
    """A clean Tansu broker for one test; its bootstrap address."""
    broker = EmbeddedKafka(port=free_port(), log_file=tmp_path / "tansu.log")
    broker.start()
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
async def signing_secrets(database_url) -> dict[str, str]:
    """Each of AGENCIES' Kafka signing secret in this test's database (auth schema migrated)."""
    return await create_signing_secrets(database_url, AGENCIES)


@pytest.fixture
def settings_env(kafka, database_url) -> dict:
    """Settings every service needs to run against this test's broker and database."""
    return {"kafka_bootstrap_servers": kafka, "database_url": database_url, **FAST_GROUPS}


@pytest.fixture
async def receiver():
    """A Receiver served by uvicorn on a free port for the length of one test."""
    recv = Receiver()
    async with serving(recv.app) as url:
        recv.url = f"{url}/decisions"
        yield recv


@pytest.fixture
async def credentials(database_url, tmp_path) -> dict:
    """The demo identities in this test's database, shaped as `make run`'s dev-credentials.json:
    agencies NCA and BorderForce (token, signing_secret), auditor, operator, oversight (token)."""
    return await demo.ensure_async(database_url, tmp_path / demo.FILE)
