"""What platforms answer, however it comes (a signed callback, a poll of a ticket, an operator
recording an e-mail answer): each answer becomes an event in the dispatcher's outbox, in the
same transaction that notes it on the ticket and the delivery, so none is lost between the two."""

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatcher import db, domain
from services.dispatcher.adapters.answers import parse_answer
from services.dispatcher.adapters.base import (Decision, DecisionMode, InvalidCallback, PlatformAnswer,
                                               VerifiedCallback)
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.lanes import Lane
from services.dispatcher.outbound import message
from shared.auth.principal import Principal, Role
from shared.events import Platform
from shared.topics import TAKEDOWN_DECISIONS
from shared.webhooks import TOLERANCE_S

log = logging.getLogger(__name__)

# Accepted callbacks are remembered this long after they turn stale: the clocks of the instances
# sharing the table may differ by this much.
CLOCK_MARGIN_S = 60
POLL_LEASE_S = 60.0  # a poll (its rate-limit wait included) gives up after this; its ticket is polled again then


class UnknownTicket(LookupError):
    """A callback about a ticket we do not hold (yet): the platform should try again later."""


class NotAnsweredByHand(Exception):
    """An operator's answer for a platform whose answers come through its API, not by e-mail."""


class Decisions:
    def __init__(self, registry: AdapterRegistry, lanes: Mapping[Platform, Lane], sessions: async_sessionmaker,
                 wake_relay=lambda: None):
        self.registry, self.lanes, self.sessions, self.wake_relay = registry, lanes, sessions, wake_relay

    def verify_callback(self, platform: Platform, headers: Mapping[str, str], body: bytes) -> VerifiedCallback:
        """The callback, if the platform's adapter takes callbacks and its signature verifies;
        InvalidCallback (or UnknownPlatform) if not. No I/O: the route's guard calls it."""
        adapter = self.registry.for_platform(platform)
        if adapter.decisions is not DecisionMode.webhook:
            raise InvalidCallback(f"{adapter.slug} takes no callbacks")
        return adapter.parse_callback(headers, body, platform)

    def caller(self, platform: Platform) -> Principal:
        """Who a verified callback comes from: the platform, proved by its adapter's signature."""
        return Principal(platform.value, frozenset({Role.platform}),
                         f"signature:{self.registry.for_platform(platform).slug}")

    async def accept_callback(self, platform: Platform, verified: VerifiedCallback) -> int:
        """Record a verified callback's answers under the platform's name; the number of answers.

        A callback accepted before is refused as a replay. It counts as accepted only with its
        answers committed: one answered 503 (the database down) may come again."""
        adapter, by = self.registry.for_platform(platform), self.caller(platform)
        async with self.sessions() as session, session.begin():
            await _check_tickets(session, platform, verified.answers)
            if verified.replay_key is not None and not await db.first_acceptance(
                    session, adapter.slug, verified.replay_key, _remember_until(verified.fresh_until)):
                raise InvalidCallback("replayed: this callback was accepted before")
            await record_answers(session, platform, verified.answers, by=by)
        self.wake_relay()
        return len(verified.answers)

    async def record_by_hand(self, platform: Platform, ticket_id: str, envelope: dict, by: Principal) -> PlatformAnswer:
        """An answer a platform gave outside any API (e.g. by e-mail), as an operator records it.

        Only platforms reached by e-mail (DecisionMode.manual) take one: the others answer for
        themselves, and an answer typed in for them would stand beside or against theirs."""
        if self.registry.for_platform(platform).decisions is not DecisionMode.manual:
            raise NotAnsweredByHand(f"{platform.value} answers through its API; "
                                    f"only e-mail channels take answers by hand")
        async with self.sessions() as session, session.begin():
            referral_id = await db.referral_of(session, platform.value, ticket_id)
            if referral_id is None:
                raise UnknownTicket(f"no ticket {ticket_id!r} on {platform}")
            answer = parse_answer(envelope, ticket_id, referral_id)
            await record_answers(session, platform, [answer], by=by)
        self.wake_relay()
        return answer

    async def poll_due(self, limit: int = 100) -> int:
        """Ask platforms about due undecided tickets; the number of tickets polled. No transaction is
        open while platforms are asked: the tickets are leased first, the answers recorded after."""
        async with self.sessions() as session, session.begin():
            due = await db.lease_due(session, limit, POLL_LEASE_S)
        if not due:
            return 0
        results = await asyncio.gather(*(self._poll(t) for t in due), return_exceptions=True)
        async with self.sessions() as session, session.begin():
            for ticket, result in zip(due, results, strict=True):
                await self._polled(session, ticket, result)
        self.wake_relay()
        return len(due)

    async def _poll(self, ticket) -> PlatformAnswer | None:
        async with asyncio.timeout(POLL_LEASE_S):
            await self.lanes[Platform(ticket.platform)].throttle()
            return await self.registry.by_slug(ticket.adapter).poll(ticket.ticket_id, ticket.referral_id)

    async def _polled(self, session: AsyncSession, ticket, result: PlatformAnswer | BaseException | None) -> None:
        """Record a poll's answer if it is news (a decision, or a question not seen yet), and when to poll next."""
        if isinstance(result, BaseException):
            log.warning("referral %s: polling %s ticket %s failed: %r", ticket.referral_id, ticket.platform,
                        ticket.ticket_id, result)
            result = None
        if isinstance(result, Decision) or (result is not None and ticket.status != db.INFORMATION_REQUESTED):
            log.info("referral %s: %s ticket %s answered when polled", ticket.referral_id, ticket.platform,
                     ticket.ticket_id)
            await record_answers(session, Platform(ticket.platform), [result])
        await db.polled(session, ticket.platform, ticket.ticket_id, _status_after(ticket.status, result),
                        self.registry.by_slug(ticket.adapter).config.poll_interval_s)


async def record_answers(session: AsyncSession, platform: Platform, answers: Sequence[PlatformAnswer],
                         by: Principal | None = None) -> None:
    """Queue each answer's event and note it on its ticket and delivery, in session's transaction."""
    await db.OUTBOX.queue(session, [message(TAKEDOWN_DECISIONS, domain.answered(platform, a, by)) for a in answers])
    for answer in answers:
        status = db.DECIDED if isinstance(answer, Decision) else db.INFORMATION_REQUESTED
        await db.set_status(session, platform.value, answer.ticket_id, status)
    if decided := [a.ticket_id for a in answers if isinstance(a, Decision)]:
        await db.DELIVERIES.decided(session, platform.value, decided)


async def _check_tickets(session: AsyncSession, platform: Platform, answers: Sequence[PlatformAnswer]) -> None:
    """UnknownTicket for an answer on a ticket we do not hold; InvalidCallback for one on another referral."""
    for answer in answers:
        known = await db.referral_of(session, platform.value, answer.ticket_id)
        if known is None:
            raise UnknownTicket(f"no ticket {answer.ticket_id!r} on {platform}")
        if known != answer.referral_id:
            raise InvalidCallback(f"ticket {answer.ticket_id!r} is not for referral {answer.referral_id}")


def _remember_until(fresh_until: float | None) -> datetime:
    """How long an accepted callback is remembered: until it is stale, with a margin for clocks."""
    if fresh_until is None:  # a scheme without a time: remembered for the tolerance from now
        fresh_until = time.time() + TOLERANCE_S
    return datetime.fromtimestamp(fresh_until + CLOCK_MARGIN_S, UTC)


def _status_after(status: str, answer: PlatformAnswer | None) -> str:
    if isinstance(answer, Decision):
        return db.DECIDED
    return db.INFORMATION_REQUESTED if answer is not None else status
