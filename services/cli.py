"""The `takedown` command: run one service, or the whole stack with `takedown run`."""

from pathlib import Path

import typer

from shared.serving import configure_logging, serve

app = typer.Typer(help="takedown: carries takedown referrals to platforms and back, with an audit trail.",
                  no_args_is_help=True, add_completion=False)


@app.command()
def intake() -> None:
    """Run the intake service (HTTP API and referrals.inbound consumer)."""
    from services.intake.app import create_app
    from services.intake.config import IntakeSettings

    settings = IntakeSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.intake_host, settings.intake_port, "intake")


@app.command()
def dispatcher() -> None:
    """Run the dispatcher (delivers referrals to platforms, receives their decisions)."""
    from services.dispatcher.app import create_app
    from services.dispatcher.config import DispatcherSettings

    settings = DispatcherSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.dispatcher_host, settings.dispatcher_port, "dispatcher")


@app.command()
def outcomes() -> None:
    """Run the outcomes service (audit trail and auditors' API)."""
    from services.outcomes.app import create_app
    from services.outcomes.config import OutcomesSettings

    settings = OutcomesSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.outcomes_host, settings.outcomes_port, "outcomes")


@app.command()
def sandbox() -> None:
    """Run the platform sandbox that stands in for platforms' reporting APIs."""
    from services.sandbox.app import create_app
    from services.sandbox.config import SandboxSettings

    settings = SandboxSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.sandbox_host, settings.sandbox_port, "sandbox")


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
