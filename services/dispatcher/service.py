"""Dispatcher's service layer: route referrals to lanes, deliver them, and turn every platform
answer (receipt, callback or poll) into lifecycle events."""

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatcher import db, domain
from services.dispatcher.adapters.base import (Decision, DecisionMode, InvalidCallback, PlatformAdapter,
                                               PlatformAnswer, VerifiedCallback)
from services.dispatcher.adapters.answers import parse_answer
from services.dispatcher.adapters.registry import AdapterRegistry, UnknownPlatform
from services.dispatcher.lanes import Delivered, GaveUp, Lane, RetryLater
from services.dispatcher.outbound import Outbound, Record
from shared.auth.principal import Principal, Role
from shared.events import Platform, ReferralSubmitted
from shared.faults import crash_point
from shared.topics import REFERRALS_DISPATCH, TAKEDOWN_DECISIONS
from shared.webhooks import TOLERANCE_S

log = logging.getLogger(__name__)

# Accepted callbacks are remembered this long after they turn stale: the clocks of the instances
# sharing the table may differ by this much.
CLOCK_MARGIN_S = 60


class UnknownTicket(LookupError):
    """A callback about a ticket we do not hold (yet): the platform should try again later."""


class NotAnsweredByHand(Exception):
    """An operator's answer for a platform whose answers come through its API, not by e-mail."""


class DispatchService:
    def __init__(self, registry: AdapterRegistry, lanes: Mapping[Platform, Lane], outbound: Outbound,
                 sessions: async_sessionmaker):
        self.registry, self.lanes, self.outbound, self.sessions = registry, lanes, outbound, sessions

    async def route(self, referral: ReferralSubmitted, record: Record) -> None:
        """Put a new referral on its platform's lane, or record that no adapter serves it."""
        try:
            self.registry.for_platform(referral.platform)
        except UnknownPlatform as exc:
            await self.outbound.event(REFERRALS_DISPATCH, domain.dispatch_failed(
                referral.referral_id, referral.platform, "none", str(exc), 0, permanent=True))
            return
        await self.outbound.to_lane(referral.platform.value, record)

    async def deliver(self, referral: ReferralSubmitted, record: Record) -> None:
        """One delivery attempt from a lane; publish what came of it."""
        lane = self.lanes[referral.platform]
        result = await lane.deliver(referral, record.attempt)
        rid, platform, slug = referral.referral_id, referral.platform, lane.adapter.slug
        match result:
            case Delivered(receipt, sent_at):
                crash_point("dispatcher.reported")  # the platform has it; nothing of it stored or published
                await self._opened(lane.adapter, platform, receipt.ticket_id, rid, receipt.answer is None)
                await self.outbound.event(REFERRALS_DISPATCH, domain.dispatched(
                    rid, platform, slug, receipt.ticket_id, record.attempt, referral.dispatch, at=sent_at))
                if receipt.answer is not None:
                    await self.record_answers(platform, [receipt.answer])
                crash_point("dispatcher.published")  # published; the lane's offset not yet committed
            case RetryLater(reason, not_before):
                await self.outbound.to_retry(platform.value, record, not_before, reason)
            case GaveUp(reason, permanent):
                await self.outbound.dead_letter(record, reason)
                await self.outbound.event(REFERRALS_DISPATCH, domain.dispatch_failed(
                    rid, platform, slug, reason, record.attempt, permanent, referral.dispatch))

    async def release(self, platform: str, record: Record, max_hold_s: float = 30.0) -> None:
        """Hold a parked report until it is due, then put it back on its lane."""
        wait = record.not_before - time.time()
        if wait > max_hold_s:  # do not hold the consumer for long: park it again, later
            await asyncio.sleep(max_hold_s)
            await self.outbound.repark(platform, record)
            return
        if wait > 0:
            await asyncio.sleep(wait)
        await self.outbound.to_lane(platform, record)

    async def callback(self, platform: Platform, headers: Mapping[str, str], body: bytes) -> int:
        """Verify a platform's callback and publish its answers; the number of answers."""
        return await self.accept_callback(platform, self.verify_callback(platform, headers, body))

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
        """Publish a verified callback's answers under the platform's name; the number of answers.

        A callback accepted before is refused as a replay. It counts as accepted only with its
        answers published: one answered 503 (Kafka or the database down) may come again."""
        adapter, by = self.registry.for_platform(platform), self.caller(platform)
        async with self.sessions() as session, session.begin():
            await _check_tickets(session, platform, verified.answers)
            if verified.replay_key is not None and not await db.first_acceptance(
                    session, adapter.slug, verified.replay_key, _remember_until(verified.fresh_until)):
                raise InvalidCallback("replayed: this callback was accepted before")
            await self.record_answers(platform, verified.answers, by=by, session=session)
        return len(verified.answers)

    async def record_by_hand(self, platform: Platform, ticket_id: str, envelope: dict, by: Principal) -> PlatformAnswer:
        """An answer a platform gave outside any API (e.g. by e-mail), as an operator records it.

        Only platforms reached by e-mail (DecisionMode.manual) take one: the others answer for
        themselves, and an answer typed in for them would stand beside or against theirs."""
        if self.registry.for_platform(platform).decisions is not DecisionMode.manual:
            raise NotAnsweredByHand(f"{platform.value} answers through its API; "
                                    f"only e-mail channels take answers by hand")
        async with self.sessions() as session:
            referral_id = await db.referral_of(session, platform.value, ticket_id)
        if referral_id is None:
            raise UnknownTicket(f"no ticket {ticket_id!r} on {platform}")
        answer = parse_answer(envelope, ticket_id, referral_id)
        await self.record_answers(platform, [answer], by=by)
        return answer

    async def record_answers(self, platform: Platform, answers: Sequence[PlatformAnswer], by: Principal | None = None,
                             session: AsyncSession | None = None) -> None:
        """Publish each answer as an event, then note it on the ticket (in session's transaction, if given)."""
        for answer in answers:
            await self.outbound.event(TAKEDOWN_DECISIONS, domain.answered(platform, answer, by))
            status = db.DECIDED if isinstance(answer, Decision) else db.INFORMATION_REQUESTED
            if session is not None:
                await db.set_status(session, platform.value, answer.ticket_id, status)
                continue
            async with self.sessions() as own, own.begin():
                await db.set_status(own, platform.value, answer.ticket_id, status)

    async def poll_due(self, limit: int = 100) -> int:
        """Ask platforms about due open tickets; the number of tickets polled."""
        async with self.sessions() as session, session.begin():
            due = await db.claim_due(session, limit)
            results = await asyncio.gather(*(self._poll(t) for t in due), return_exceptions=True)
            for ticket, result in zip(due, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("polling %s ticket %s failed: %r", ticket.platform, ticket.ticket_id, result)
                    result = None
                adapter = self.registry.by_slug(ticket.adapter)
                await db.polled(session, ticket.platform, ticket.ticket_id, _status_after(ticket.status, result),
                                adapter.config.poll_interval_s)
        return len(due)

    async def _poll(self, ticket) -> PlatformAnswer | None:
        """Poll one ticket; publish a decision, or an information request the first time it is seen."""
        await self.lanes[Platform(ticket.platform)].throttle()
        answer = await self.registry.by_slug(ticket.adapter).poll(ticket.ticket_id, ticket.referral_id)
        if isinstance(answer, Decision) or (answer is not None and ticket.status != db.INFORMATION_REQUESTED):
            await self.outbound.event(TAKEDOWN_DECISIONS, domain.answered(Platform(ticket.platform), answer))
        return answer

    async def _opened(self, adapter: PlatformAdapter, platform: Platform, ticket_id: str, rid, poll: bool) -> None:
        poll_after = adapter.config.poll_interval_s if poll and adapter.decisions in (
            DecisionMode.polling, DecisionMode.response) else None
        async with self.sessions() as session, session.begin():
            await db.open_ticket(session, platform.value, ticket_id, rid, adapter.slug, poll_after)


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
