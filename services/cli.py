"""The `takedown` command: run one service, or the whole stack with `takedown run`."""

import gc
import importlib
from pathlib import Path

import typer

from services.audit_cli import audit_app
from services.dlq import dlq_app
from services.keys_cli import keys_app
from services.ops import lag
from services.reconcile_cli import reconcile
from services.seed import seed
from services.workers import run_workers, serve_socket
from shared.serving import configure_logging, serve

app = typer.Typer(help="takedown: carries takedown referrals to platforms and back, with an audit trail.",
                  no_args_is_help=True, add_completion=False)


def _serve(name: str, settings_class: str, listen_fd: int | None = None) -> None:
    """Build one service from its settings and serve it until SIGINT or SIGTERM (on an inherited
    listening socket when listen_fd is given: a dispatcher worker)."""
    settings = getattr(importlib.import_module(f"services.{name}.config"), settings_class)()
    configure_logging(settings.log_level)
    service_app = importlib.import_module(f"services.{name}.app").create_app(settings)
    # What start-up made (modules, classes, schemas) lives as long as the process: frozen, it is not
    # walked by every full collection, which the garbage of busy batches otherwise triggers often.
    gc.freeze()
    if listen_fd is not None:
        serve_socket(service_app, listen_fd, name)
        return
    serve(service_app, getattr(settings, f"{name}_host"), getattr(settings, f"{name}_port"), name)


@app.command()
def intake() -> None:
    """Run the intake service (HTTP API and referrals.inbound consumer)."""
    _serve("intake", "IntakeSettings")


@app.command()
def dispatcher(
    workers: int = typer.Option(1, "--workers", min=1, envvar="DISPATCHER_WORKERS",
                                help="Dispatcher processes sharing the port, the consumer groups and the lanes' limits."),
    listen_fd: int | None = typer.Option(None, hidden=True, help="A worker's inherited listening socket."),
) -> None:
    """Run the dispatcher (delivers referrals to platforms, receives their decisions)."""
    if workers > 1:
        from services.dispatcher.config import DispatcherSettings

        settings = DispatcherSettings()
        configure_logging(settings.log_level)
        raise typer.Exit(run_workers(workers, settings.dispatcher_host, settings.dispatcher_port))
    _serve("dispatcher", "DispatcherSettings", listen_fd)


@app.command()
def outcomes() -> None:
    """Run the outcomes service (audit trail and auditors' API)."""
    _serve("outcomes", "OutcomesSettings")


@app.command()
def sandbox() -> None:
    """Run the platform sandbox that stands in for platforms' reporting APIs."""
    _serve("sandbox", "SandboxSettings")


@app.command()
def run(
    data_dir: Path = typer.Option(Path(".takedown"), envvar="TAKEDOWN_DATA_DIR",
                                  help="Where the embedded Postgres keeps its data, and the logs."),
    kafka_port: int = typer.Option(9092, envvar="TAKEDOWN_KAFKA_PORT",
                                   help="Port of the embedded Kafka broker (when none is configured)."),
) -> None:
    """Run everything: embedded Kafka and Postgres unless configured, then every service."""
    from services.supervisor import Supervisor

    configure_logging()
    raise typer.Exit(Supervisor(data_dir, kafka_port).run())


app.add_typer(dlq_app, name="dlq", help="List dead letters, and replay them to where they came from.")
app.add_typer(audit_app, name="audit", help="Verify the audit trail's hash chain, and take checkpoints of it.")
app.add_typer(keys_app, name="keys", help="API keys (create, list, revoke) and agencies' Kafka signing secrets.")
app.command()(lag)
app.command()(seed)
app.command()(reconcile)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
