"""`takedown keys`: API keys (create, list, revoke) and agencies' Kafka signing secrets.

A key's token is printed once, when it is made: only its SHA-256 is stored. Exit code 2 when
the database cannot be reached.
"""

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import keys, setup, signing
from shared.auth.principal import Role
from shared.db import describe, single_use_engine
from shared.embedded import cli_database_url

keys_app = typer.Typer(no_args_is_help=True, help="API keys and agencies' Kafka signing secrets.")
DATABASE = typer.Option(None, "--database-url", help="SQLAlchemy URL of the database (default: DATABASE_URL, "
                        "else the embedded one `takedown run` started in .takedown/).")
ROLES = [r.value for r in Role if r is not Role.platform]


def _run(database_url: str | None, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """work(session) in one transaction on the database; exit 2 if it cannot be reached."""
    url = cli_database_url(database_url)

    async def go() -> Any:
        await setup.migrate(url)
        engine = single_use_engine(url)
        try:
            async with async_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        typer.echo(f"error: cannot reach {describe(url)}: {type(exc).__name__}", err=True)
        raise typer.Exit(2) from exc


def _who() -> str:
    return f"cli:{getpass.getuser()}"


@keys_app.command("create")
def create(role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
           agency: str | None = typer.Option(None, "--agency", help="The agency (agency keys only)."),
           name: str | None = typer.Option(None, "--name", help="Who holds it, recorded as user:<name> "
                                           "(people's keys; default: the key id)."),
           days: int = typer.Option(keys.DEFAULT_DAYS, "--days", min=1, max=3650, help="Days until it expires."),
           database_url: str | None = DATABASE) -> None:
    """Make an API key and print its token, once."""
    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}")
    try:
        keys.check_role(Role(role), agency)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    made = _run(database_url, lambda s: keys.create(s, Role(role), name, agency, _who(), days))
    typer.echo(made.token)
    typer.echo(f"key {made.key_id} ({role}{' ' + agency if agency else ''}), expires "
               f"{made.expires_at:%Y-%m-%d}. The token is shown only now: keep it safe.", err=True)


@keys_app.command("list")
def list_keys(database_url: str | None = DATABASE) -> None:
    """Every key: id, role, name, agency, created, expires, last used, revoked (never a secret)."""
    rows = _run(database_url, keys.listing)
    typer.echo(f"{'key id':<14}{'role':<11}{'name':<20}{'agency':<14}{'created':<12}{'expires':<12}"
               f"{'last used':<18}revoked")
    for r in rows:
        revoked = f"{r['revoked_at']:%Y-%m-%d}" if r["revoked_at"] else "-"
        used = f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never"
        typer.echo(f"{r['key_id']:<14}{r['role']:<11}{r['name'][:19]:<20}{(r['agency'] or '-')[:13]:<14}"
                   f"{r['created_at']:%Y-%m-%d}  {r['expires_at']:%Y-%m-%d}  {used:<18}{revoked}")


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key id (the part after td_)."),
           database_url: str | None = DATABASE) -> None:
    """Revoke a key: services refuse it within AUTH_CACHE_S (5 s)."""
    if not _run(database_url, lambda s: keys.revoke(s, key_id)):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("signing-secret")
def signing_secret(agency: str = typer.Option(..., "--agency", help="The agency that signs its Kafka records."),
                   retire_all: bool = typer.Option(False, "--retire-all", help="Retire every secret of the "
                                                   "agency instead (a leak): its records are refused."),
                   database_url: str | None = DATABASE) -> None:
    """Make a new Kafka signing secret for agency (the previous one stays valid, for rotation) and print it."""
    if retire_all:
        count = _run(database_url, lambda s: signing.retire(s, agency))
        typer.echo(f"retired {count} signing secret(s) of {agency}")
        return
    typer.echo(_run(database_url, lambda s: signing.create(s, agency, _who())))
    typer.echo(f"new signing secret for {agency}; the one before it stays valid until the next rotation. "
               "Shown only now.", err=True)
