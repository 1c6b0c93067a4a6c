"""How a consumer treats failures: poison goes to a dead letter, outages are waited out.

Infrastructure errors (database or broker unreachable) are retried in place with capped
exponential backoff for as long as it takes: the record is never committed past. Any other
error is retried a bounded number of times, spaced, and then dead-lettered so the partition
keeps moving. Attempts are spaced by equal jitter (at least half the exponential delay), so a
record's bounded attempts can never all happen within a few milliseconds.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    OperationalError,
    InterfaceError,
    KafkaConnectionError,
    KafkaTimeoutError,
    PoolTimeout,  # every pooled connection busy: the database is slow or was restarting
)


class Poison(Exception):
    """A record that can never be processed (bad JSON, wrong schema): dead-letter it at once."""


@dataclass(frozen=True)
class AttemptTimes:
    """When the first and the last attempt at a dead-lettered record were made (UTC)."""

    first: datetime
    last: datetime


# Set by process_or_dead_letter while its dead_letter callback runs, so that the dead letter can
# carry when the attempts were made without every callback passing them along.
dead_letter_attempts: ContextVar[AttemptTimes | None] = ContextVar("dead_letter_attempts", default=None)


# SQLSTATEs that mean the database is unreachable, starting, stopping or contended, not that the
# statement is wrong: class 08 (connection), 57P01-03 (shut down, crashed, starting up, as after
# a restart), 53300 (too many connections), 40001 / 40P01 (serialization failure, deadlock).
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})


def is_transient(exc: BaseException) -> bool:
    """True for errors that mean 'try again later', not 'this record is bad'."""
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        if exc.connection_invalidated or state.startswith("08") or state in TRANSIENT_SQLSTATES:
            return True
    return isinstance(exc, TRANSIENT)


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Full-jitter exponential backoff in seconds for the given attempt (1-based)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def spaced_backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Equal-jitter exponential backoff: at least half the exponential delay, at most all of it."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


async def process_or_dead_letter(
    work: Callable[[], Awaitable[None]],
    dead_letter: Callable[[str, int], Awaitable[None]],
    *,
    max_attempts: int = 4,
    what: str = "record",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run work until it succeeds; dead-letter poison at once and other failures after max_attempts.

    Only failures that are not outages count towards max_attempts: a record that waited out an
    outage still gets every one of its attempts. While dead_letter runs, dead_letter_attempts holds
    when the first and last attempts were made.
    """
    attempt, failures, first = 0, 0, datetime.now(UTC)
    while True:
        attempt += 1
        last = datetime.now(UTC)
        try:
            await work()
            return
        except Poison as exc:
            await _dead_letter(dead_letter, str(exc), attempt, AttemptTimes(first, last))
            return
        except Exception as exc:  # noqa: BLE001 - classified below, never swallowed silently
            if is_transient(exc):
                log.warning("%s: transient failure (attempt %s), retrying: %r", what, attempt, exc)
                await sleep(spaced_backoff(attempt))
                continue
            failures += 1
            if failures >= max_attempts:
                log.exception("%s: failed %s times, dead-lettering", what, failures)
                await _dead_letter(dead_letter, f"{type(exc).__name__}: {exc}", attempt, AttemptTimes(first, last))
                return
            log.warning("%s: failed (attempt %s/%s): %r", what, failures, max_attempts, exc)
            await sleep(spaced_backoff(failures))


async def _dead_letter(dead_letter: Callable[[str, int], Awaitable[None]], reason: str, attempts: int,
                       times: AttemptTimes) -> None:
    token = dead_letter_attempts.set(times)
    try:
        await dead_letter(reason, attempts)
    finally:
        dead_letter_attempts.reset(token)


async def until_done(work: Callable[[], Awaitable[None]], what: str,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Run work, waiting out infrastructure outages with backoff; any other error is raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await work()
            return
        except Exception as exc:  # noqa: BLE001 - only transient errors are retried here
            if not is_transient(exc):
                raise
            log.warning("%s: transient failure (attempt %s), retrying: %r", what, attempt, exc)
            await sleep(spaced_backoff(attempt))


async def keep_going(step: Callable[[], Awaitable[bool]], idle_s: float, what: str, cap_s: float = 30.0) -> None:
    """Run step() until cancelled: again at once while it says there is more to do, after idle_s
    when it does not; a step that fails is logged and tried again after a capped backoff."""
    failures = 0
    while True:
        try:
            more = await step()
            failures = 0
        except Exception:  # noqa: BLE001 - a background loop must outlive any one bad step
            failures += 1
            log.exception("%s failed (%s in a row)", what, failures)
            await asyncio.sleep(backoff(failures, cap=cap_s))
            continue
        if not more:
            await asyncio.sleep(idle_s)
