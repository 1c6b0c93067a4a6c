"""`takedown dispatcher --workers N`: N dispatcher processes behind one listening socket.

The parent binds DISPATCHER_HOST:DISPATCHER_PORT once and starts N workers, each a whole
dispatcher (its own consumers in the dispatcher's consumer groups, its own lanes, the lanes'
limits shared through Postgres: services/dispatcher/limits.py). Each inherits the socket and
serves it, so the kernel hands every connection to one of them: a platform's callback reaches
whichever is up, under the one DISPATCHER_CALLBACK_BASE_URL, and the socket outlives any worker
(connections wait in its backlog while one starts again). No port per worker, and no
SO_REUSEPORT, whose sharing differs between kernels.

The parent starts a worker that exits again, passes SIGTERM and SIGINT on and waits for them to
stop cleanly; killed, it takes its workers with it (SIGKILL), as a single process would go.
"""

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("takedown.dispatcher")
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 20.0


def serve_socket(app: FastAPI, fd: int, name: str) -> None:
    """Serve app on an inherited listening socket until SIGINT or SIGTERM (a worker's server)."""
    sock = socket.socket(fileno=fd)
    log.info("%s worker listening on http://%s:%s", name, *sock.getsockname()[:2])
    uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False)).run(sockets=[sock])


def run_workers(count: int, host: str, port: int) -> int:
    """Serve host:port with count dispatcher workers, each started again when it exits, until a
    signal; the exit code."""
    listener = socket.create_server((host, port), backlog=2048)
    pool = Workers(count, listener.fileno())
    signal.signal(signal.SIGTERM, pool.stop_soon)
    signal.signal(signal.SIGINT, pool.stop_soon)
    log.info("dispatcher: %s workers serving http://%s:%s", count, host, port)
    try:
        pool.supervise()
    finally:
        pool.stop()
        listener.close()
    return 0


def _die_with_parent() -> None:
    """In a worker before exec: ask Linux to SIGKILL it when the parent dies, as one process dies."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Workers:
    """The worker processes and their supervision."""

    def __init__(self, count: int, fd: int):
        self.fd, self.stopping = fd, False
        self.processes = [self._start(i) for i in range(count)]

    def _start(self, index: int) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "dispatcher", "--workers", "1", "--listen-fd", str(self.fd)],
            pass_fds=(self.fd,), preexec_fn=_die_with_parent)
        log.info("dispatcher worker %s started (pid %s)", index + 1, process.pid)
        return process

    def stop_soon(self, signum, frame) -> None:
        log.info("received %s, stopping the dispatcher workers", signal.Signals(signum).name)
        self.stopping = True

    def supervise(self) -> None:
        while not self.stopping:
            for index, process in enumerate(self.processes):
                if process.poll() is not None and not self.stopping:
                    log.error("dispatcher worker %s (pid %s) exited with %s; starting it again", index + 1,
                              process.pid, process.returncode)
                    time.sleep(RESTART_DELAY_S)
                    self.processes[index] = self._start(index)
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM every worker, SIGKILL any still running after STOP_TIMEOUT_S."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("dispatcher worker (pid %s) did not stop in %s s, killing it", process.pid, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
