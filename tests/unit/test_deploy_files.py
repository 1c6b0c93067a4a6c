"""Static checks of the deployment files: no Docker or Kubernetes is needed to run them."""

import importlib
import re
import shlex
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"

EXPECTED_COMMANDS = {"intake", "dispatcher", "outcomes", "sandbox", "run"}
BACKENDS = {"kafka", "postgres"}
APP_SERVICES = {"intake", "dispatcher", "outcomes", "sandbox"}
NEEDS_KAFKA_AND_POSTGRES = APP_SERVICES - {"sandbox"}


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def subcommand(service: dict) -> str:
    """The `takedown` subcommand a compose service runs: `takedown intake` -> `intake`."""
    command = service["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    assert words[0] == "takedown", f"expected a takedown command, got {words}"
    return words[1]


def depends_on(service: dict) -> set[str]:
    deps = service.get("depends_on", {})
    return set(deps) if isinstance(deps, (dict, list)) else set()


def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, comments dropped and continuation lines joined."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        instructions.append(current + stripped)
        current = ""
    if current:
        instructions.append(current)
    return instructions


def copied_sources() -> list[str]:
    """Sources of every COPY/ADD from the build context (not `--from` another stage)."""
    sources = []
    for instruction in dockerfile_instructions():
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() not in {"COPY", "ADD"}:
            continue
        rest = rest.strip()
        if rest.startswith("["):
            words = yaml.safe_load(rest)  # the JSON form is valid YAML
        else:
            words = shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources.extend(paths[:-1])  # the last path is the destination
    return sources


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_defines_kafka_postgres_and_every_service():
    assert BACKENDS | APP_SERVICES <= set(compose_services())


def test_every_compose_service_has_a_healthcheck():
    for name, service in compose_services().items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_app_service_builds_from_a_dockerfile_that_exists():
    services = compose_services()
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_every_app_service_runs_a_known_takedown_subcommand():
    services = compose_services()
    for name in APP_SERVICES:
        assert subcommand(services[name]) in EXPECTED_COMMANDS, name
        assert subcommand(services[name]) == name


def test_compose_subcommands_are_registered_in_the_cli():
    cli = importlib.import_module("services.cli")
    app = getattr(cli, "app", None)
    assert isinstance(app, typer.Typer), "services.cli must define the typer app `app`"
    command = typer.main.get_command(app)
    registered = set(getattr(command, "commands", {}) or {command.name})
    assert EXPECTED_COMMANDS <= registered
    services = compose_services()
    for name in APP_SERVICES:
        assert subcommand(services[name]) in registered, name


def test_every_depends_on_target_is_a_compose_service():
    services = compose_services()
    for name, service in services.items():
        missing = depends_on(service) - set(services)
        assert not missing, f"{name} depends on undefined {missing}"


def test_app_services_wait_for_healthy_kafka_and_postgres():
    services = compose_services()
    for name in NEEDS_KAFKA_AND_POSTGRES:
        deps = services[name]["depends_on"]
        for backend in BACKENDS:
            assert deps[backend]["condition"] == "service_healthy", (name, backend)
    assert services["dispatcher"]["depends_on"]["sandbox"]["condition"] == "service_healthy"
    assert not depends_on(services["sandbox"]) & BACKENDS


def test_kafka_is_apache_kafka_in_kraft_mode():
    kafka = compose_services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


def test_app_services_are_given_kafka_and_the_database():
    services = compose_services()
    for name in NEEDS_KAFKA_AND_POSTGRES:
        env = services[name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert "@postgres:5432/" in env["DATABASE_URL"], name


def test_every_app_service_listens_on_all_interfaces():
    services = compose_services()
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env[f"{name.upper()}_HOST"] == "0.0.0.0", name
        port = str(env[f"{name.upper()}_PORT"])
        assert any(port in str(p) for p in services[name].get("ports", [])), name
        assert f":{port}/health" in " ".join(services[name]["healthcheck"]["test"]), name


def test_outcomes_may_check_content_at_the_sandbox_it_is_pointed_at():
    env = compose_services()["outcomes"]["environment"]
    assert env["CONTENT_CHECK_URL"].startswith(f"http://{env['FETCH_ALLOW']}/")


# --- deploy/k8s ---------------------------------------------------------------------------


def test_k8s_manifests_exist():
    assert k8s_documents(), "no manifests in deploy/k8s"


def test_every_k8s_manifest_has_api_version_kind_and_name():
    for filename, doc in k8s_documents():
        assert doc.get("apiVersion"), filename
        assert doc.get("kind"), filename
        assert doc.get("metadata", {}).get("name"), filename


def test_every_k8s_deployment_has_health_probes_and_resources():
    deployments = [(f, d) for f, d in k8s_documents() if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for _, d in deployments} >= NEEDS_KAFKA_AND_POSTGRES
    for filename, doc in deployments:
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] == "/health", (filename, probe)
            assert container["resources"]["requests"]["memory"], filename
            assert container["resources"]["limits"]["memory"], filename


def test_k8s_deployments_reference_a_config_map_and_secret_that_are_defined():
    docs = k8s_documents()
    defined = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    for filename, doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in defined, filename
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in defined, filename


def test_k8s_services_select_a_deployment():
    docs = [d for _, d in k8s_documents()]
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] == "Deployment"]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]


# --- deploy/Dockerfile --------------------------------------------------------------------


def test_dockerfile_copies_only_paths_that_exist():
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"


def test_dockerfile_runs_as_a_non_root_user():
    users = [i.split(None, 1)[1] for i in dockerfile_instructions() if i.upper().startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_exposes_every_service_port():
    exposed = set()
    for instruction in dockerfile_instructions():
        if instruction.upper().startswith("EXPOSE "):
            exposed |= set(re.findall(r"\d+", instruction))
    assert {"8001", "8002", "8003", "8090"} <= exposed
