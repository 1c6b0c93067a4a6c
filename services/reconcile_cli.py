"""`takedown reconcile [--dry-run]`: what is stuck, per step and platform, and for how long; then
drive it on.

It reads every service's tables (it is an operator's tool, like `takedown audit`): intake's and
the dispatcher's unconfirmed events, the dispatcher's due deliveries and undecided tickets, and,
from the audit trail's side, referrals recorded as submitted and never dispatched. Without
--dry-run it makes what is stuck longer than the bound due at once; the services' own loops
(relays, reconcilers, pollers) then drive it on with the same event ids and idempotency keys.
Exit code 0, or 2 when the database cannot be read.
"""

import asyncio
import json

import typer
from sqlalchemy import and_, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatcher import db as dispatcher_db
from services.dispatcher import reconciler
from services.intake import db as intake_db
from services.outcomes import db as outcomes_db
from shared.db import describe, single_use_engine
from shared.embedded import cli_database_url
from shared.settings import OutboxSettings
from shared.stuck import Stuck, cutoff, outbox_now, outbox_stuck, table

DATABASE = typer.Option(None, "--database-url", help="SQLAlchemy URL of the database (default: DATABASE_URL, "
                        "else the embedded one `takedown run` started in .takedown/).")


async def submitted_not_dispatched(session: AsyncSession, older_than_s: float) -> list[Stuck]:
    """Referrals the audit trail holds as submitted, with no dispatch recorded within the bound."""
    r = outcomes_db.referrals
    stmt = (select(r.c.platform, func.count().label("count"), func.min(r.c.submitted_at).label("oldest"))
            .where(and_(r.c.status == "submitted", r.c.submitted_at < cutoff(older_than_s)))
            .group_by(r.c.platform).order_by(r.c.platform))
    return [Stuck("outcomes: submitted, no dispatch recorded", row.platform, row.count, row.oldest, 0)
            for row in await session.execute(stmt)]


async def _has(session: AsyncSession, table) -> bool:
    """Whether a service's table is in this database (a service may have a database of its own)."""
    return (await session.execute(text("SELECT to_regclass(:name)"), {"name": table.fullname})).scalar() is not None


async def _reconcile(url: str, older_than_s: float, dry_run: bool) -> tuple[list[Stuck], int]:
    engine = single_use_engine(url)
    rows, moved = [], 0
    try:
        async with AsyncSession(engine) as session, session.begin():
            if await _has(session, intake_db.OUTBOX.table):
                rows += await outbox_stuck(session, intake_db.OUTBOX, "intake", older_than_s)
                moved += 0 if dry_run else await outbox_now(session, intake_db.OUTBOX, older_than_s)
            if await _has(session, dispatcher_db.DELIVERIES.table):
                rows += await reconciler.stuck(session, older_than_s)
                moved += 0 if dry_run else await reconciler.drive_on(session, older_than_s)
            if await _has(session, outcomes_db.referrals):
                rows += await submitted_not_dispatched(session, older_than_s)
        return rows, moved
    finally:
        await engine.dispose()


def reconcile(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what is stuck."),
    older_than: float | None = typer.Option(None, "--older-than", min=0, metavar="SECONDS",
                                            help="The bound (default: REDRIVE_AFTER_S)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
    database_url: str | None = DATABASE,
) -> None:
    """Show what made no progress within the bound, per step and platform; then drive it on."""
    bound = OutboxSettings().redrive_after_s if older_than is None else older_than
    url = cli_database_url(database_url)
    try:
        rows, moved = asyncio.run(_reconcile(url, bound, dry_run))
    except (SQLAlchemyError, OSError) as exc:
        typer.echo(f"error: cannot read {describe(url)}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.as_json()))
    else:
        typer.echo("\n".join(table(rows)) if rows else f"nothing stuck for more than {bound:g} s")
    if not dry_run:
        typer.echo(f"{moved} items due now; the running services drive them on", err=True)
