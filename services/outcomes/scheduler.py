"""The scheduler: every tick, publish the deadlines missed and what the content checks found.

Each tick reads candidates in batches (referrals waiting for the platform; removals and
restrictions with stays-down checks still to make; referrals waiting for a decision whose
content is not known to be gone), works out what is due with the pure functions of deadlines.py,
staysdown.py and liveness.py, and publishes the events to REFERRALS_LIFECYCLE, which outcomes
itself consumes and records like any other. The events' ids are derived from what they record,
so a restart or a second instance publishing the same event again changes nothing: outcomes
records an event id once. What is due is worked out from the database every tick (level
triggered), so an event published but never recorded is due again: it is published again once
SCHEDULER_REPUBLISH_S has passed (Published). A failing tick is logged and retried with backoff;
so is a failing content check, each on its own (staysdown.Retries), not again every tick.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from faststream.kafka import KafkaBroker
from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.outcomes.audit import audit_events
from services.outcomes.config import OutcomesSettings
from services.outcomes.db import referrals
from services.outcomes.deadlines import WAITING, due
from services.outcomes.liveness import (CHECKED_STATUSES, GONE_EVENT, UpChecks, due_liveness, gone_event, gone_id,
                                        liveness_id)
from services.outcomes.probe import ContentProbe, ProbeFailed, ProbeRefused
from services.outcomes.staysdown import (CHECK_EVENTS, CHECKED_OUTCOMES, CHECKED_STATUS, Retries, check_event,
                                         check_id, due_check)
from shared import topics
from shared.events import Event
from shared.kafka import publish_event
from shared.reliability import backoff

log = logging.getLogger(__name__)
REMEMBERED = 100_000  # ids of events this instance published lately
r = referrals.c


class Published:
    """The events this instance published lately, by id, and when (seconds on a monotonic clock).

    While outcomes has not recorded an event yet, the next tick finds it due again. Publishing it
    (or making its content check) again every tick would flood a consumer that lags, so an event
    is held back for hold_s after it was published; after that it is taken for lost (dead-lettered,
    or published to a broker that lost it) and made again. Kept in memory: a restart only makes
    each event not yet recorded once more, which outcomes records once.
    """

    def __init__(self, hold_s: float, remembered: int = REMEMBERED):
        self.hold_s, self.remembered = hold_s, remembered
        self._at: dict[UUID, float] = {}

    def recently(self, event_id: UUID, now: float) -> bool:
        """Whether event_id was published less than hold_s before now."""
        return now < self._at.get(event_id, -float("inf")) + self.hold_s

    def add(self, event_id: UUID, now: float) -> None:
        """Remember that event_id was published at now."""
        self._at.pop(event_id, None)  # to the end: the oldest is forgotten first
        self._at[event_id] = now
        if len(self._at) > self.remembered:  # forgotten early: merely published again sooner
            del self._at[next(iter(self._at))]


class Scheduler:
    def __init__(self, sessions: async_sessionmaker, broker: KafkaBroker, probe: ContentProbe,
                 settings: OutcomesSettings):
        self.sessions, self.broker, self.probe = sessions, broker, probe
        self.policy, self.offsets = settings.deadline_policy(), list(settings.stays_down_checks_s)
        self.liveness_offsets, self.up = list(settings.liveness_checks_s), UpChecks()
        self.tick_s, self.batch = settings.scheduler_tick_s, settings.scheduler_batch
        self.concurrency, self.enabled = settings.content_check_concurrency, settings.scheduler_enabled
        self.published = Published(settings.scheduler_republish_s)
        self.retries = Retries(settings.content_check_retry_s, settings.content_check_retry_max_s)
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if not self.enabled:
            log.info("scheduler off (SCHEDULER_ENABLED=false): no deadlines or content checks from this instance")
            return
        self.task = asyncio.create_task(self.run_forever(), name="outcomes-scheduler")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await self.probe.close()

    async def run_forever(self) -> None:
        """Tick until cancelled; a failing tick is logged and retried with backoff."""
        failures = 0
        while True:
            try:
                await self.tick()
                failures = 0
            except Exception:  # noqa: BLE001 - the scheduler must outlive any one bad tick
                failures += 1
                log.exception("scheduler tick failed (%s in a row)", failures)
                await asyncio.sleep(backoff(failures, base=self.tick_s, cap=60.0))
                continue
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> int:
        """Publish what is due now; how many events were published."""
        now = datetime.now(UTC)
        return await self.deadlines(now) + await self.stays_down(now) + await self.liveness(now)

    async def deadlines(self, now: datetime) -> int:
        # No deadline comes sooner than the shortest allowed time after submission.
        query = select(r.referral_id, r.status, r.category, r.platform, r.submitted_at, r.overdue, r.transitions) \
            .where(r.status.in_([s.value for s in WAITING]), r.submitted_at <= now - self.policy.shortest())
        published = 0
        async for rows in self._batches(query):
            for row in rows:
                for event in due(row, self.policy, now):
                    published += await self._publish(event)
        return published

    async def stays_down(self, now: datetime) -> int:
        if not self.offsets:
            return 0
        done = select(func.count()).where(audit_events.c.referral_id == r.referral_id,
                                          audit_events.c.event_type.in_(CHECK_EVENTS),
                                          audit_events.c.occurred_at >= r.decided_at).scalar_subquery()
        query = select(r.referral_id, r.status, r.outcome, r.decided_at, r.canonical_url, done.label("done")) \
            .where(r.status == CHECKED_STATUS, r.outcome.in_(CHECKED_OUTCOMES),
                   r.decided_at <= now - timedelta(seconds=self.offsets[0]), done < len(self.offsets))
        published = 0
        limit = asyncio.Semaphore(self.concurrency)
        async for rows in self._batches(query):
            published += await _all(self._check(row, n, limit) for row, n in self._due_checks(rows, now))
        return published

    async def liveness(self, now: datetime) -> int:
        if not self.liveness_offsets:
            return 0
        gone = exists().where(audit_events.c.referral_id == r.referral_id, audit_events.c.event_type == GONE_EVENT)
        query = select(r.referral_id, r.status, r.dispatched_at, r.canonical_url) \
            .where(r.status.in_([s.value for s in CHECKED_STATUSES]), ~gone,
                   r.dispatched_at <= now - timedelta(seconds=self.liveness_offsets[0]))
        published = 0
        limit = asyncio.Semaphore(self.concurrency)
        async for rows in self._batches(query):
            published += await _all(self._liveness_check(row, n, limit) for row, n in self._due_liveness(rows, now))
        return published

    def _due_checks(self, rows: list[dict[str, Any]], now: datetime) -> list[tuple[dict[str, Any], int]]:
        """(row, check number) of each check due now, unless published already or waiting after a failure."""
        checks = []
        for row in rows:
            number = due_check(row, self.offsets, row["done"], now)
            if number is None:
                continue
            check, now_s = check_id(row["referral_id"], row["decided_at"], number), time.monotonic()
            if not self.published.recently(check, now_s) and self.retries.ready(check, now_s):
                checks.append((row, number))
        return checks

    def _due_liveness(self, rows: list[dict[str, Any]], now: datetime) -> list[tuple[dict[str, Any], int]]:
        """(row, check number) of each liveness check due now, unless its content was just found gone or the
        check waits after a failure."""
        checks, now_s = [], time.monotonic()
        for row in rows:
            rid, dispatched_at = row["referral_id"], row["dispatched_at"]
            number = due_liveness(row, self.liveness_offsets, self.up.done(rid, dispatched_at), now)
            if number is None or self.published.recently(gone_id(rid), now_s):
                continue
            if self.retries.ready(liveness_id(rid, dispatched_at, number), now_s):
                checks.append((row, number))
        return checks

    async def _check(self, row: dict[str, Any], number: int, limit: asyncio.Semaphore) -> int:
        url, check = row["canonical_url"], check_id(row["referral_id"], row["decided_at"], number)
        reachable = await self._probe(row["referral_id"], url, check, f"stays-down check {number}", limit)
        if reachable is None:
            return 0
        return await self._publish(check_event(row["referral_id"], url, row["decided_at"], number, reachable,
                                               datetime.now(UTC)))

    async def _liveness_check(self, row: dict[str, Any], number: int, limit: asyncio.Semaphore) -> int:
        rid, url, dispatched_at = row["referral_id"], row["canonical_url"], row["dispatched_at"]
        reachable = await self._probe(rid, url, liveness_id(rid, dispatched_at, number), f"liveness check {number}",
                                      limit)
        if reachable is None:
            return 0
        if reachable:  # nothing changed: nothing to record
            self.up.found_up(rid, dispatched_at, number)
            log.debug("referral %s: liveness check %s of %s: up", rid, number, url)
            return 0
        return await self._publish(gone_event(rid, url, datetime.now(UTC)))

    async def _probe(self, referral_id: UUID, url: str, check: UUID, what: str,
                     limit: asyncio.Semaphore) -> bool | None:
        """Whether url is up; None if the check failed or was refused, which then waits (Retries)."""
        async with limit:
            try:
                reachable = await self.probe.reachable(url)
            except ProbeFailed as exc:
                refused = isinstance(exc, ProbeRefused)
                delay = self.retries.failed(check, time.monotonic(), refused=refused)
                log.warning("referral %s: %s of %s %s, next try in %.0f s: %s", referral_id, what, url,
                            "refused" if refused else "failed", delay, exc)
                return None
        self.retries.succeeded(check)
        return reachable

    async def _publish(self, event: Event) -> int:
        if self.published.recently(event.id, time.monotonic()):
            return 0
        await publish_event(self.broker, topics.REFERRALS_LIFECYCLE, event)
        log.info("referral %s: published %s %s", event.referral_id, event.type, event.id)
        self.published.add(event.id, time.monotonic())
        return 1

    async def _batches(self, query: Select) -> AsyncIterator[list[dict[str, Any]]]:
        """The query's rows, a batch at a time, in referral id order; each batch in its own session."""
        after = None
        while True:
            stmt = query if after is None else query.where(r.referral_id > after)
            async with self.sessions() as session:
                result = await session.execute(stmt.order_by(r.referral_id).limit(self.batch))
                rows = [dict(row) for row in result.mappings()]
            if rows:
                yield rows
            if len(rows) < self.batch:
                return
            after = rows[-1]["referral_id"]


async def _all(checks: Iterable[Coroutine[Any, Any, int]]) -> int:
    """Run the checks at once (each waits for its turn under the concurrency limit); the events they published."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(check) for check in checks]
    return sum(t.result() for t in tasks)
