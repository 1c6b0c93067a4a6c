"""Intake's service layer: turn valid submissions into durable referrals and events."""

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.intake import db
from services.intake.domain import Submission, to_referral
from shared.auth import Principal
from shared.events import Event
from shared.faults import crash_point

SOURCE = "/takedown/intake"
FORGET_CHUNK = 10_000  # ids deleted per transaction: no long lock on a big table


class Admission(Protocol):
    """What intake may take on (services/intake/backpressure.py's Gauge)."""

    def admitting(self, count: int) -> AbstractContextManager[None]:
        """While count submissions are stored; raises Refused, storing nothing, past the bound."""

    def carrying(self, count: int) -> AbstractContextManager[None]:
        """While count submissions already read are stored: never refused."""

    def accepted(self, count: int) -> None:
        """count new referrals were stored (called inside admitting or carrying)."""


class Unbounded:
    """Admits everything."""

    def admitting(self, count: int) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def carrying(self, count: int) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def accepted(self, count: int) -> None:
        pass


class IntakeService:
    """Accepts submissions: one transaction stores each referral and its outbox event."""

    def __init__(self, sessions: async_sessionmaker, on_commit: Callable[[], None],
                 admission: Admission | None = None):
        self.sessions, self.on_commit, self.admission = sessions, on_commit, admission or Unbounded()

    async def submit(self, submissions: list[tuple[Submission, Principal]], via: str) -> list[db.Accepted]:
        """Store submissions, each made by an authenticated agency principal, durably (new ones get
        referral.submitted queued, recorded under that principal); keep their order. Past the
        backlog bound all are refused (Refused), none stored."""
        with self.admission.admitting(len(submissions)):
            return await self._store(_events(submissions, via), None)  # type: ignore[return-value]

    async def submit_signed(self, submissions: list[tuple[Submission, Principal]],
                            ids: list[db.WebhookId]) -> list[db.Accepted | db.Position]:
        """submit() for signed records on referrals.inbound, remembering each record's webhook-id in
        the same transaction. A record whose id was accepted from another position is a replay: not
        stored, its answer is that position. Never refused: the records are read already (under
        backpressure the consumer is paused instead)."""
        with self.admission.carrying(len(submissions)):
            return await self._store(_events(submissions, "kafka"), ids)

    async def forget_webhook_ids(self, window_s: float, chunk: int = FORGET_CHUNK) -> int:
        """Forget the ids of records signed longer than window_s ago, a chunk per transaction; how many."""
        before, total = datetime.now(UTC) - timedelta(seconds=window_s), 0
        while True:
            async with self.sessions() as session, session.begin():
                forgotten = await db.forget_webhook_ids(session, before, chunk)
            total += forgotten
            if forgotten < chunk:
                return total

    async def _store(self, events: list[Event], ids: list[db.WebhookId] | None) -> list[db.Accepted | db.Position]:
        if not events:
            return []
        async with self.sessions() as session, session.begin():
            replays = await db.claim_webhook_ids(session, ids) if ids is not None else [None] * len(events)
            fresh = [event for event, replay in zip(events, replays, strict=True) if replay is None]
            stored = await db.accept(session, fresh) if fresh else []
            crash_point("intake.before_commit")
        crash_point("intake.after_commit")  # stored; not yet answered, nor its Kafka offset committed
        self.on_commit()
        self.admission.accepted(sum(not a.duplicate for a in stored))
        accepted = iter(stored)
        return [next(accepted) if replay is None else replay for replay in replays]


def _events(submissions: list[tuple[Submission, Principal]], via: str) -> list[Event]:
    """referral.submitted for each submission, under the principal that made it (WrongAgency if
    its body names another agency)."""
    now = datetime.now(UTC)
    return [Event(source=SOURCE, actor=p.actor, credential=p.credential, time=now,
                  data=to_referral(s, own_agency(s, p), now, via))
            for s, p in submissions]


class WrongAgency(ValueError):
    """A submission naming an agency other than the one that made it."""


def own_agency(submission: Submission, principal: Principal) -> str:
    """The agency a submission is made for: the caller's; WrongAgency if its body names another."""
    if principal.agency is None:
        raise WrongAgency("only an agency can refer")
    if submission.agency is not None and submission.agency != principal.agency:
        raise WrongAgency(f"agency {submission.agency!r} is not the caller's agency")
    return principal.agency


def validate_each(items: list[object]) -> list[Submission | ValidationError]:
    """Validate every item on its own, so one bad item does not fail its batch."""
    results: list[Submission | ValidationError] = []
    for item in items:
        try:
            results.append(Submission.model_validate(item))
        except ValidationError as exc:
            results.append(exc)
    return results
