"""Database plumbing: engines, session factories and Alembic migrations run at start."""

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import asyncpg.exceptions
from alembic import command
from alembic.config import Config
from sqlalchemy import Table, TextClause, event, pool, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)


def make_engine(url: str, pool_size: int = 10, command_timeout_s: float = 60, max_overflow: int = 10,
                statement_timeout_s: float | None = None) -> AsyncEngine:
    """An asyncpg engine whose pool heals after a Postgres restart without a ping per checkout.

    pool_pre_ping would cost a round trip on every checkout (every batch, every request). Instead,
    the first statement that meets a dead connection fails as a disconnect: SQLAlchemy then
    invalidates that connection and every one checked out of the pool before it, and the caller
    retries (until_done, or a 503 with Retry-After), so one failure per restart, not one ping per use.

    No statement waits longer than command_timeout_s for an answer (asyncpg then raises a
    TimeoutError, an outage to retry), and a connection asyncpg left in a broken protocol state
    is thrown away rather than handed out again (discard_broken_connections). statement_timeout_s
    has the server cancel any statement running longer (an export's pool). A failing statement's
    parameters (referral text, credentials) stay out of its error and the logs.
    """
    connect_args: dict = {"command_timeout": max(command_timeout_s, statement_timeout_s or 0)}
    if statement_timeout_s is not None:
        connect_args["server_settings"] = {"statement_timeout": str(int(statement_timeout_s * 1000))}
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False,
                                 hide_parameters=True, connect_args=connect_args)
    event.listen(engine.sync_engine, "handle_error", discard_broken_connections)
    return engine


def single_use_engine(url: str) -> AsyncEngine:
    """An engine without a pool, for one-off work (migrations, the CLI); parameters hidden as in make_engine."""
    return create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)


def discard_broken_connections(context) -> None:
    """Treat asyncpg's InternalClientError ("cannot switch to state 12; another operation (2) is in
    progress") as a disconnect, so the pool invalidates that connection.

    After Postgres was killed mid-transaction, some pooled connections came back in that state:
    SQLAlchemy returned them to the pool (sqlalchemy#13241, unreleased in 2.1.9), the next
    statement on one never got an answer, and the dispatcher's lanes stopped. Found by the fault
    suite (tests/faults/test_crashes.py).
    """
    error = context.original_exception
    while error is not None:
        if isinstance(error, asyncpg.exceptions.InternalClientError):
            context.is_disconnect = True
            return
        error = error.__cause__


def make_sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def insert_arrays(table: Table, columns: Sequence[str], then: str = "",
                  sent_as: Mapping[str, tuple[str, str]] | None = None) -> TextClause:
    """One INSERT for any number of rows: each column's values bound as one array (a list under the
    column's name), unnested in the database in list order. A multi-row VALUES is a new statement for
    every row count and binds every value apart; this one is prepared once. `then`: ON CONFLICT...;
    sent_as: column -> (the type its values are sent as, the SQL expression that makes the column of it).
    """
    dialect, sent_as = postgresql.dialect(), sent_as or {}
    names = [dialect.identifier_preparer.quote(c) for c in columns]
    # Without a length: CAST(x AS VARCHAR(300)[]) would cut a longer value short, silently, where the
    # column's own check refuses it (and a cut actor no longer matches the hash chained over it).
    types = [sent_as[c][0] if c in sent_as else _unbounded(table.c[c].type).compile(dialect=dialect)
             for c in columns]
    values = [sent_as[c][1] if c in sent_as else name for c, name in zip(columns, names)]
    arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(columns, types))
    return text(f"INSERT INTO {table.fullname} ({', '.join(names)}) SELECT {', '.join(values)} "
                f"FROM unnest({arrays}) WITH ORDINALITY AS u ({', '.join(names)}, _ord) ORDER BY _ord {then}")


async def copy_records(session: AsyncSession, table: Table, columns: Sequence[str], records: Iterable[tuple]) -> None:
    """COPY rows (tuples in the order of columns) into table, in the session's transaction.

    Binary COPY through the session's own asyncpg connection: no per-value work in SQLAlchemy and
    no array checks in asyncpg. The transaction must have begun in the database already (a
    statement run in it): a COPY outside one would commit on its own. Errors of the database or
    the connection come out as SQLAlchemy's would (a DBAPIError, the connection invalidated when it
    broke), so callers and is_transient (shared/reliability.py) treat them alike; a value the binary
    encoder refuses is raised as asyncpg raises it (TypeError, OverflowError...), not transient.
    """
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        raise RuntimeError(f"COPY into {table.fullname} outside a transaction begun in the database: it would "
                           "commit on its own; run a statement in the transaction first")
    try:
        await driver.copy_records_to_table(table.name, schema_name=table.schema, columns=list(columns),
                                           records=records)
    except (asyncpg.exceptions.PostgresError, asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.InternalClientError) as error:
        raise await _as_dbapi_error(connection, driver, f"COPY {table.fullname} FROM STDIN", error) from error


async def _as_dbapi_error(connection: AsyncConnection, driver, statement: str, error: Exception) -> DBAPIError:
    """error, from a call made on the driver connection itself, as SQLAlchemy would have raised it.

    Wrapped in the dialect's DB-API exception of the same kind (the mapping SQLAlchemy's asyncpg
    dialect uses), then in SQLAlchemy's; a connection that broke (closed, or left in a state no
    statement can follow, see discard_broken_connections) is invalidated, as SQLAlchemy does on a
    disconnect, so the pool never hands it out again.
    """
    dbapi = connection.dialect.loaded_dbapi
    kind = next((k for k in type(error).__mro__ if k in dbapi._asyncpg_error_translate), None)
    orig = dbapi._asyncpg_error_translate[kind](error.args[0] if error.args else str(error), error) if kind \
        else dbapi.Error(str(error), error)
    broken = driver.is_closed() or isinstance(error, asyncpg.exceptions.InternalClientError)
    if broken:
        await connection.invalidate(error)
    return DBAPIError.instance(statement, None, orig, dbapi.Error, hide_parameters=True,
                               connection_invalidated=broken, dialect=connection.dialect)


def _unbounded(column_type):
    return type(column_type)() if getattr(column_type, "length", None) else column_type


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)


async def migrate(url: str, migrations_dir: Path, schema: str) -> None:
    """Upgrade a service's schema to head; safe to call from every instance at start."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    await asyncio.to_thread(command.upgrade, cfg, "head")
    log.info("schema %s migrated to head", schema)


def run_alembic_env(context) -> None:
    """Body of every service's migrations/env.py: online, async, one schema per service."""
    cfg = context.config
    url, schema = cfg.attributes["url"], cfg.attributes["schema"]

    def do_run(connection) -> None:
        # Serialise concurrent starts of several instances (and of every service, for the shared auth
        # schema), before CREATE SCHEMA IF NOT EXISTS, which is not safe when two run at once.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection, version_table_schema=schema, transactional_ddl=True
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = single_use_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())
