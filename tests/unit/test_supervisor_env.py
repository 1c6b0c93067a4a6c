"""What `takedown run` tells the services it starts: stays-down checks go to its sandbox, and may reach it;
the sandbox keeps its state in the data directory. And a dead embedded broker is started again."""

from services.outcomes.config import OutcomesSettings
from services.supervisor import Stack, Supervisor
from shared.embedded import EmbeddedKafka, free_port
from shared.fetch import FetchSettings

EXTERNAL = {"KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092", "DATABASE_URL": "postgresql+asyncpg://db.example/t"}


def test_checks_go_to_the_sandbox_and_the_sandbox_alone_is_allowed(tmp_path):
    stack = Stack(tmp_path, env={**EXTERNAL, "SANDBOX_PORT": "9190"})

    stack.start_infrastructure()  # with external servers set, only the environment is prepared

    assert stack.env["CONTENT_CHECK_URL"] == "http://127.0.0.1:9190/content?url={url}"
    assert stack.env["FETCH_ALLOW"] == "127.0.0.1:9190"
    assert OutcomesSettings(fetch_allow=stack.env["FETCH_ALLOW"]).fetch_settings().allow == \
        FetchSettings.allowing(["127.0.0.1:9190"]).allow


def test_an_allow_list_set_by_the_operator_is_kept(tmp_path):
    stack = Stack(tmp_path, env={**EXTERNAL, "FETCH_ALLOW": "sandbox.test:8090"})

    stack.start_infrastructure()

    assert stack.env["FETCH_ALLOW"] == "sandbox.test:8090"


def test_the_sandbox_keeps_its_state_in_the_data_directory_unless_the_operator_says_where(tmp_path):
    stack = Stack(tmp_path, env=EXTERNAL)
    stack.start_infrastructure()
    assert stack.env["SANDBOX_STATE_FILE"] == str(tmp_path.resolve() / "sandbox" / "state.db")

    elsewhere = Stack(tmp_path, env={**EXTERNAL, "SANDBOX_STATE_FILE": "platforms.db"})
    elsewhere.start_infrastructure()
    assert elsewhere.env["SANDBOX_STATE_FILE"] == "platforms.db"


def test_takedown_run_starts_a_dead_embedded_broker_again_on_its_port(tmp_path):
    supervisor = Supervisor(tmp_path)
    supervisor.kafka = EmbeddedKafka(port=free_port())
    supervisor.kafka.start()
    try:
        before = supervisor.kafka.cluster_id
        supervisor.kafka.process.kill()
        supervisor.kafka.process.wait()

        supervisor._restart_dead()

        assert supervisor.kafka.process.poll() is None and supervisor.kafka.cluster_id != before
    finally:
        supervisor.kafka.stop()


def test_takedown_run_starts_a_second_dispatcher_only_with_4_cpus_or_more(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPATCHER_WORKERS", raising=False)
    for cpus, dispatchers in ((8, "2"), (4, "2"), (3, "1"), (2, "1"), (1, "1")):
        monkeypatch.setattr("os.cpu_count", lambda n=cpus: n)
        assert Supervisor(tmp_path).env["DISPATCHER_WORKERS"] == dispatchers, f"{cpus} CPUs"

    monkeypatch.setenv("DISPATCHER_WORKERS", "3")  # the operator's choice stands
    assert Supervisor(tmp_path).env["DISPATCHER_WORKERS"] == "3"


def test_a_stack_runs_the_dispatchers_it_is_asked_for(tmp_path):
    assert Stack(tmp_path, env=EXTERNAL, dispatchers=2).env["DISPATCHER_WORKERS"] == "2"
    assert "DISPATCHER_WORKERS" not in Stack(tmp_path, env=EXTERNAL).env
