"""Intake's service layer: turn valid submissions into durable referrals and events."""

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.intake import db
from services.intake.domain import Submission, to_referral
from shared.auth import Principal
from shared.events import Event
from shared.faults import crash_point

SOURCE = "/takedown/intake"


class IntakeService:
    """Accepts submissions: one transaction stores each referral and its outbox event."""

    def __init__(self, sessions: async_sessionmaker, on_commit: Callable[[], None]):
        self.sessions, self.on_commit = sessions, on_commit

    async def submit(self, submissions: list[tuple[Submission, Principal]], via: str) -> list[db.Accepted]:
        """Store submissions, each made by an authenticated agency principal, durably (new ones get
        referral.submitted queued, recorded under that principal); keep their order."""
        if not submissions:
            return []
        now = datetime.now(UTC)
        events = [
            Event(source=SOURCE, actor=p.actor, credential=p.credential, time=now,
                  data=to_referral(s, own_agency(s, p), now, via))
            for s, p in submissions
        ]
        async with self.sessions() as session, session.begin():
            accepted = await db.accept(session, events)
            crash_point("intake.before_commit")
        crash_point("intake.after_commit")  # stored; not yet answered, nor its Kafka offset committed
        self.on_commit()
        return accepted


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
