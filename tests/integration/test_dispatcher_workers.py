"""`takedown dispatcher --workers 2`: two dispatcher processes behind one port, a dead one started
again while the other serves, and all of them stopped by one SIGTERM."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import psutil

from shared.embedded import free_port
from tests.support import answers_health, eventually


def workers_of(parent: subprocess.Popen) -> list[psutil.Process]:
    """The parent's running workers (not one that died and is not yet reaped)."""
    found = []
    for child in psutil.Process(parent.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):  # a zombie is one
            if "--listen-fd" in child.cmdline():
                found.append(child)
    return found


async def test_workers_share_one_port_and_a_dead_one_is_started_again(kafka, database_url, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": database_url, "DISPATCHER_PORT": str(port),
           "KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "TOPIC_PARTITIONS": "3"}
    with open(tmp_path / "dispatcher.log", "wb") as log:
        parent = subprocess.Popen([sys.executable, "-m", "services.cli", "dispatcher", "--workers", "2"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        first = await eventually(lambda: _async(len(workers_of(parent)) == 2 and workers_of(parent)), 30,
                                 "two workers")
        await eventually(lambda: answers_health(url), 90, "the dispatcher to serve")

        first[0].kill()
        await eventually(lambda: _async(first[0].pid not in {w.pid for w in workers_of(parent)}
                                        and len(workers_of(parent)) == 2), 30, "the dead worker started again")
        assert await answers_health(url), "the other worker served meanwhile"
        assert first[1].is_running(), "only the dead worker was started again"

        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 60) == 0
        assert not still_running(first[1]), "every worker stopped with the parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def still_running(worker: psutil.Process) -> bool:
    """True while the worker still runs."""
    return worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE


async def _async(value):
    return value
