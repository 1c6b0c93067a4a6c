"""The whole stack on one machine: `takedown run`, and the Stack the fault suite and benchmarks drive.

Starts the embedded broker and database unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are
set, then each service as a child process; `takedown run` restarts any that dies and stops
cleanly on Ctrl-C or SIGTERM. The dispatcher runs as DISPATCHER_WORKERS processes behind its one
port (services/workers.py restarts a worker that dies); `takedown run` makes that two
where there are 4 CPUs or more, one otherwise, unless it is set.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from shared.auth import demo
from shared.embedded import URL_FILE, EmbeddedKafka, EmbeddedPostgres, die_with_parent, wait_until

log = logging.getLogger("takedown.run")
SERVICES = {  # name: (host variable, port variable, default port), in start order
    "sandbox": ("SANDBOX_HOST", "SANDBOX_PORT", 8090),
    "outcomes": ("OUTCOMES_HOST", "OUTCOMES_PORT", 8003),
    "dispatcher": ("DISPATCHER_HOST", "DISPATCHER_PORT", 8002),
    "intake": ("INTAKE_HOST", "INTAKE_PORT", 8001),
}


class Stack:
    """The whole system on this machine: the broker, the database and each service a child process.

    Apart from the supervising loop, so the fault suite and the benchmarks can start it, kill or
    freeze one part of it, and start that part again. env is every child's environment (this
    process's by default); without KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL in it, the embedded
    servers are started.
    """

    def __init__(self, data_dir: Path, kafka_port: int = 9092, env: dict[str, str] | None = None,
                 dispatchers: int | None = None):
        self.data_dir, self.kafka_port = data_dir.resolve(), kafka_port
        self.env = dict(os.environ if env is None else env)
        if dispatchers is not None:  # dispatcher processes (workers) behind its port; else DISPATCHER_WORKERS or 1
            self.env["DISPATCHER_WORKERS"] = str(dispatchers)
        self.children: dict[str, subprocess.Popen] = {}
        self.kafka: EmbeddedKafka | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.credentials: dict | None = None  # the demo identities, on the embedded database only

    def url(self, name: str) -> str:
        host_var, port_var, port = SERVICES[name]
        return f"http://{self.env.get(host_var, '127.0.0.1')}:{self.env.get(port_var, port)}"

    def start(self, names=tuple(SERVICES), timeout: float = 90) -> None:
        """The infrastructure, then each named service; return once all are healthy."""
        self.start_infrastructure()
        for name in names:
            self.spawn(name)
        for name in names:
            wait_until(lambda n=name: self.healthy(n), timeout, f"{name} to be healthy")

    def start_infrastructure(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        # The sandbox stands in for the platforms here: answer quickly, take e-mail reports, and
        # remember every report across restarts of the stack, as real platforms do.
        self.env.setdefault("POLL_INTERVAL_S", "2")
        self.env.setdefault("SANDBOX_SMTP_PORT", "8025")
        self.env.setdefault("SANDBOX_STATE_FILE", str(self.data_dir / "sandbox" / "state.db"))
        self.env.setdefault("CONTENT_CHECK_URL", self.url("sandbox") + "/content?url={url}")
        # The sandbox listens on loopback, which checks may not reach unless allowed by name.
        self.env.setdefault("FETCH_ALLOW", self.url("sandbox").removeprefix("http://"))
        if not self.env.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.kafka = EmbeddedKafka(port=self.kafka_port, log_file=self.data_dir / "logs" / "tansu.log")
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.start()
            # One member per group here: a short session makes the first join quick (~1.5 s, not 5).
            self.env.setdefault("KAFKA_SESSION_TIMEOUT_MS", "3000")
            self.env.setdefault("KAFKA_HEARTBEAT_INTERVAL_MS", "1000")
            log.info("Kafka: embedded Tansu (memory only) at %s", self.env["KAFKA_BOOTSTRAP_SERVERS"])
        if not self.env.get("DATABASE_URL"):
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            self.env["DATABASE_URL"] = self.postgres.start()
            (self.data_dir / URL_FILE).write_text(self.env["DATABASE_URL"] + "\n")  # for takedown audit
            log.info("Postgres: embedded, data in %s, URL %s", self.postgres.data_dir, self.env["DATABASE_URL"])
            self.credentials = demo.ensure(self.env["DATABASE_URL"], self.data_dir / demo.FILE)
            log.info("demo identities (API keys for NCA, BorderForce, an auditor, an operator and oversight, and "
                     "each agency's Kafka signing secret) are in %s", self.data_dir / demo.FILE)

    def spawn(self, name: str, instance: str | None = None, **extra_env: str) -> subprocess.Popen:
        """Start one service (again), with extra_env laid over the stack's environment.

        instance names a further member of the same service (its own port in extra_env),
        e.g. a second outcomes consumer joining its group; by default the instance is name.
        """
        instance = instance or name
        logfile = open(self.data_dir / "logs" / f"{instance}.log", "ab")  # noqa: SIM115 - owned by the child
        self.children[instance] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", name], env={**self.env, **extra_env},
            stdout=logfile, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
        log.info("started %s (pid %s), log %s", instance, self.children[instance].pid,
                 self.data_dir / "logs" / f"{instance}.log")
        return self.children[instance]

    def healthy(self, name: str) -> bool:
        """Whether the service answers /health; raises if it has exited."""
        return self.serves(name, self.url(name))

    def serves(self, instance: str, base_url: str) -> bool:
        """Whether the child `instance` answers /health at base_url; raises if it has exited."""
        if self.children[instance].poll() is not None:
            raise RuntimeError(f"{instance} exited with {self.children[instance].returncode}; see its log")
        try:
            return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, name: str) -> None:
        """SIGKILL one service and reap it: no cleanup, no flush, no offset commit."""
        child = self.children[name]
        if child.poll() is None:
            child.kill()
        child.wait()

    def pause_broker(self) -> None:
        """Freeze the embedded broker (SIGSTOP): connections stay open and nothing answers."""
        os.kill(self._broker().pid, signal.SIGSTOP)

    def resume_broker(self) -> None:
        os.kill(self._broker().pid, signal.SIGCONT)

    def crash_broker(self) -> None:
        """SIGKILL the embedded broker: its topics, offsets and groups were in its memory only."""
        self._broker()
        self.kafka.kill()

    def restart_broker(self) -> str:
        """Start the embedded broker again after crash_broker(), on the same port, empty (a new cluster
        id); its bootstrap address. The services find it with nothing in it (shared/kafka_watch.py)."""
        if self.kafka is None:
            raise RuntimeError("the broker is external: restart it yourself")
        if self.kafka.process is not None:
            raise RuntimeError("the embedded broker is still running: crash_broker() first")
        return self.kafka.start()

    def stop_database(self) -> None:
        """Stop the embedded Postgres (its data stays); start_database() brings it back."""
        if self.postgres is None:
            raise RuntimeError("the database is external: stop it yourself")
        self.postgres.stop()

    def crash_database(self) -> None:
        """SIGKILL the embedded Postgres and all its backends, as a power cut would; the next
        start_database() recovers from its write-ahead log."""
        if self.postgres is None or self.postgres.pid is None:
            raise RuntimeError("the database is external: crash it yourself")
        postmaster = psutil.Process(self.postgres.pid)
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):  # a backend may have gone already
                process.kill()
        psutil.wait_procs(processes, timeout=10)
        self.postgres.stop()  # only forgets the server: it is no longer running

    def start_database(self) -> None:
        if self.postgres is None:
            raise RuntimeError("the database is external: start it yourself")
        self.postgres.start()

    def _broker(self) -> subprocess.Popen:
        if self.kafka is None or self.kafka.process is None:
            raise RuntimeError("the broker is external: freeze it yourself")
        return self.kafka.process

    def stop_all(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after 15 s), then the embedded servers."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for name, child in self.children.items():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15 s, killing it", name)
                child.kill()
                child.wait()
        if self.kafka:
            if self.kafka.process is not None:
                self.kafka.process.send_signal(signal.SIGCONT)  # a frozen broker cannot stop
            self.kafka.stop()
        if self.postgres:
            self.postgres.stop()
        log.info("stopped; nothing left running")


def default_dispatchers() -> int:
    """Dispatcher processes for `takedown run`: two where there are 4 CPUs or more (each is one event
    loop, busy on its own CPU at full load), one otherwise: `takedown run` puts the broker, Postgres,
    every service and the sandbox on the same machine, and on 2 cores a second dispatcher only
    competes with them (bench.scale: 0.85 times the rate of one)."""
    return max(1, min(2, (os.cpu_count() or 1) // 2))


class Supervisor(Stack):
    """`takedown run`: the stack, with any service (or the embedded broker) that dies started again,
    until a signal. A broker started again is empty: the services put their topics back
    (shared/kafka_watch.py)."""

    def __init__(self, data_dir: Path, kafka_port: int = 9092):
        super().__init__(data_dir, kafka_port)
        self.env.setdefault("DISPATCHER_WORKERS", str(default_dispatchers()))
        self.stopping = False

    def run(self) -> int:
        """Start everything, supervise until a signal, stop everything; the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.start_infrastructure()
            for name in SERVICES:
                self.spawn(name)
            for name in SERVICES:
                wait_until(lambda n=name: self.stopping or self.healthy(n), 90, f"{name} to be healthy")
            log.info("takedown is up: intake %s, outcomes %s, dispatcher %s, sandbox %s (Ctrl-C stops)",
                     *(self.url(n) for n in ("intake", "outcomes", "dispatcher", "sandbox")))
            while not self.stopping:
                self._restart_dead()
                time.sleep(0.5)
            return 0
        except Exception:
            log.exception("takedown run failed")
            return 1
        finally:
            self.stop_all()

    def _on_signal(self, signum, frame) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self.stopping = True

    def _restart_dead(self) -> None:
        broker = self.kafka.process if self.kafka else None
        if broker is not None and broker.poll() is not None and not self.stopping:
            log.error("the embedded broker exited with %s; starting it again, empty", broker.returncode)
            self.kafka.process = None
            self.kafka.start()
        for name, child in self.children.items():
            if child.poll() is not None and not self.stopping:
                log.error("%s exited with %s; restarting it", name, child.returncode)
                time.sleep(1)
                self.spawn(name)
