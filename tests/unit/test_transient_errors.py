"""Which database errors mean 'wait and try again': after a restart Postgres answers 'the database
system is starting up' for a while, and that must never send a record to the dead letters."""

import asyncpg.exceptions
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as dbapi
from sqlalchemy.exc import DBAPIError

from shared.reliability import is_transient


def wrapped(error: Exception) -> DBAPIError:
    """The error as SQLAlchemy raises it from asyncpg."""
    return DBAPIError.instance("SELECT 1", {}, dbapi.Error(str(error), error), dbapi.Error)


def test_a_database_starting_up_or_shutting_down_is_transient():
    for error in (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
                  asyncpg.exceptions.AdminShutdownError("terminating connection"),
                  asyncpg.exceptions.CrashShutdownError("crash"),
                  asyncpg.exceptions.ConnectionFailureError("connection failure"),
                  asyncpg.exceptions.TooManyConnectionsError("too many clients"),
                  asyncpg.exceptions.SerializationError("could not serialize"),
                  asyncpg.exceptions.DeadlockDetectedError("deadlock")):
        assert is_transient(wrapped(error)), type(error).__name__


def test_a_statement_the_database_refuses_is_not_transient():
    for error in (asyncpg.exceptions.UniqueViolationError("duplicate key"),
                  asyncpg.exceptions.StringDataRightTruncationError("value too long"),
                  asyncpg.exceptions.RaiseError("audit_events is append-only")):
        assert not is_transient(wrapped(error)), type(error).__name__
