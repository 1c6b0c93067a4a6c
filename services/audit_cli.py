"""`takedown audit verify|checkpoint`: check the audit trail's hash chain, and take checkpoints of it.

Both read one snapshot (REPEATABLE READ, read only), so the head they print is the one they
verified. Exit codes: 0 intact, 1 the chain is broken (the first broken link is printed), 2 the
check could not be made (the database is unreachable, say).
"""

import asyncio

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes import audit
from services.outcomes.chain import Checkpoint, Finding
from shared.db import describe, single_use_engine
from shared.embedded import cli_database_url

audit_app = typer.Typer(no_args_is_help=True, help="Verify the audit trail's hash chain, and take checkpoints of it.")
DATABASE = typer.Option(None, "--database-url", help="SQLAlchemy URL of the database (default: DATABASE_URL, "
                        "else the embedded one `takedown run` started in .takedown/).")


def _checkpoint(text: str | None) -> Checkpoint | None:
    try:
        return Checkpoint.parse(text) if text is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


async def _check(url: str, checkpoint: Checkpoint | None) -> tuple[Finding | None, Checkpoint]:
    """The first broken link (or None) and the head, from one snapshot of the database."""
    engine = single_use_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            async with AsyncSession(bind=conn) as session:
                head = await audit.head(session)
                return await audit.verify(session, checkpoint), head
    finally:
        await engine.dispose()


def _verified(database_url: str | None, checkpoint: Checkpoint | None) -> Checkpoint:
    """The verified head; exits 1 naming the first broken link, or 2 when it cannot check."""
    url = cli_database_url(database_url)
    try:
        finding, head = asyncio.run(_check(url, checkpoint))
    except (SQLAlchemyError, OSError, LookupError) as exc:
        typer.echo(f"error: cannot check the audit trail in {describe(url)}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if finding is not None:
        typer.echo(f"chain broken at position {finding.position} ({finding.kind}): {finding.message}")
        raise typer.Exit(1)
    return head


@audit_app.command("verify")
def verify_command(
    checkpoint: str | None = typer.Option(None, "--checkpoint", metavar="POSITION:HEX",
                                          help="A checkpoint kept earlier: the chain must still contain it."),
    database_url: str | None = DATABASE,
) -> None:
    """Check every link of the chain, the head, and a checkpoint if given; exit 1 at the first broken link."""
    head = _verified(database_url, _checkpoint(checkpoint))
    kept = f"; contains checkpoint {checkpoint.strip()}" if checkpoint else ""
    typer.echo(f"chain intact: {head.position} events, head {head.position} {head.hash.hex()}{kept}")


@audit_app.command("checkpoint")
def checkpoint_command(database_url: str | None = DATABASE) -> None:
    """Verify the chain, then print its head: keep the line where the database's owner cannot change it."""
    head = _verified(database_url, None)
    typer.echo(f"head {head.position} {head.hash.hex()}")
    typer.echo("keep this line outside the database; later: "
               f"takedown audit verify --checkpoint {head}")
