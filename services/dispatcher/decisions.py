"""What platforms answer, however it comes (a signed callback, a poll of a ticket, an operator
recording an e-mail answer): each answer becomes an event in the dispatcher's outbox, in the
same transaction that notes it on the ticket and the delivery, so none is lost between the two."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.dispatcher import db
from services.dispatcher.accumulator import Accumulator
from services.dispatcher.adapters.answers import parse_answer
from services.dispatcher.adapters.base import (Decision, DecisionMode, InvalidCallback, PlatformAnswer,
                                               VerifiedCallback)
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.lanes import Lane
from services.dispatcher.recording import record_answers
from shared.auth.principal import Principal, Role
from shared.events import Platform
from shared.reliability import is_transient
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
    def __init__(self, registry: AdapterRegistry, lanes: Mapping[Platform, Lane], engine: AsyncEngine,
                 wake_relay=lambda: None):
        self.registry, self.lanes, self.engine, self.wake_relay = registry, lanes, engine, wake_relay
        # Callbacks arriving together are recorded in one transaction (each answered on its own).
        self._callbacks: Accumulator[tuple[Platform, VerifiedCallback], int] = Accumulator(self._accept_batch)

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

        UnknownTicket for a ticket we do not hold (yet), InvalidCallback for one on another referral or
        for a callback accepted before (a replay). It counts as accepted only with its answers
        committed: one answered 503 (the database down) may come again."""
        return await self._callbacks.submit((platform, verified))

    async def _accept_batch(self, callbacks: list[tuple[Platform, VerifiedCallback]]) -> list[int | Exception]:
        """Callbacks arriving together, in one transaction; if it fails for another reason than an outage,
        each in a transaction of its own, so that one bad callback fails alone."""
        try:
            return await self._accept_together(callbacks)
        except Exception as exc:
            if len(callbacks) == 1 or is_transient(exc):
                raise
            log.warning("recording %s callbacks together failed, recording each alone: %r", len(callbacks), exc)
        return [await _outcome(self._accept_together([c])) for c in callbacks]

    async def _accept_together(self, callbacks: Sequence[tuple[Platform, VerifiedCallback]]) -> list[int | Exception]:
        async with self.engine.begin() as conn:
            known = await db.referrals_of(conn, list({(p.value, a.ticket_id) for p, v in callbacks for a in v.answers}))
            outcomes: list[int | Exception] = [_ticket_problem(known, p, v.answers) or len(v.answers)
                                               for p, v in callbacks]
            keyed = {i: (self.registry.for_platform(p).slug, v.replay_key, _remember_until(v.fresh_until))
                     for i, (p, v) in enumerate(callbacks)
                     if v.replay_key is not None and not isinstance(outcomes[i], Exception)}
            first = await db.first_acceptances(conn, list({k[:2]: k for k in keyed.values()}.values()))
            for i, key in keyed.items():
                if key[:2] in first:
                    first.discard(key[:2])  # the same callback twice at once: the second is a replay
                else:
                    outcomes[i] = InvalidCallback("replayed: this callback was accepted before")
            await record_answers(conn, [(p, a, self.caller(p)) for (p, v), o in zip(callbacks, outcomes, strict=True)
                                        if not isinstance(o, Exception) for a in v.answers])
        self.wake_relay()
        return outcomes

    async def record_by_hand(self, platform: Platform, ticket_id: str, envelope: dict, by: Principal) -> PlatformAnswer:
        """An answer a platform gave outside any API (e.g. by e-mail), as an operator records it.

        Only platforms reached by e-mail (DecisionMode.manual) take one: the others answer for
        themselves, and an answer typed in for them would stand beside or against theirs."""
        if self.registry.for_platform(platform).decisions is not DecisionMode.manual:
            raise NotAnsweredByHand(f"{platform.value} answers through its API; "
                                    f"only e-mail channels take answers by hand")
        async with self.engine.begin() as conn:
            referral_id = await db.referral_of(conn, platform.value, ticket_id)
            if referral_id is None:
                raise UnknownTicket(f"no ticket {ticket_id!r} on {platform}")
            answer = parse_answer(envelope, ticket_id, referral_id)
            await record_answers(conn, [(platform, answer, by)])
        self.wake_relay()
        return answer

    async def poll_due(self, limit: int = 100) -> int:
        """Ask platforms about due undecided tickets; the number of tickets polled. No transaction is
        open while platforms are asked: the tickets are leased first, the answers recorded after, all
        in one transaction."""
        async with self.engine.begin() as conn:
            due = await db.lease_due(conn, limit, POLL_LEASE_S)
        if not due:
            return 0
        results = await asyncio.gather(*(self._poll(t) for t in due), return_exceptions=True)
        async with self.engine.begin() as conn:
            await record_answers(conn, [(Platform(t.platform), r, None) for t, r in zip(due, results, strict=True)
                                        if _news(t, r)])
            await db.polled(conn, {(t.platform, t.ticket_id): (
                _status_after(t.status, _answer(t, r)), self.registry.by_slug(t.adapter).config.poll_interval_s)
                for t, r in zip(due, results, strict=True)})
        self.wake_relay()
        return len(due)

    async def _poll(self, ticket) -> PlatformAnswer | None:
        async with asyncio.timeout(POLL_LEASE_S):
            await self.lanes[Platform(ticket.platform)].throttle()
            return await self.registry.by_slug(ticket.adapter).poll(ticket.ticket_id, ticket.referral_id)


async def _outcome(accepting: Awaitable[list[int | Exception]]) -> int | Exception:
    """One callback's outcome recorded alone: its result, or the exception that failed it."""
    try:
        [outcome] = await accepting
    except Exception as exc:  # noqa: BLE001 - its caller gets it
        return exc
    return outcome


def _ticket_problem(known: Mapping[tuple[str, str], UUID], platform: Platform,
                    answers: Sequence[PlatformAnswer]) -> Exception | None:
    """UnknownTicket for an answer on a ticket we do not hold; InvalidCallback for one on another referral."""
    for answer in answers:
        referral_id = known.get((platform.value, answer.ticket_id))
        if referral_id is None:
            return UnknownTicket(f"no ticket {answer.ticket_id!r} on {platform}")
        if referral_id != answer.referral_id:
            return InvalidCallback(f"ticket {answer.ticket_id!r} is not for referral {answer.referral_id}")
    return None


def _answer(ticket, result: PlatformAnswer | BaseException | None) -> PlatformAnswer | None:
    """A poll's answer; a failed poll (logged) counts as no answer: the ticket is polled again."""
    if isinstance(result, BaseException):
        log.warning("referral %s: polling %s ticket %s failed: %r", ticket.referral_id, ticket.platform,
                    ticket.ticket_id, result)
        return None
    return result


def _news(ticket, result: PlatformAnswer | BaseException | None) -> bool:
    """Whether a poll's answer is to be recorded: a decision, or a question not seen yet."""
    if isinstance(result, BaseException) or result is None:
        return False
    if isinstance(result, Decision) or ticket.status != db.INFORMATION_REQUESTED:
        log.info("referral %s: %s ticket %s answered when polled", ticket.referral_id, ticket.platform,
                 ticket.ticket_id)
        return True
    return False


def _remember_until(fresh_until: float | None) -> datetime:
    """How long an accepted callback is remembered: until it is stale, with a margin for clocks."""
    if fresh_until is None:  # a scheme without a time: remembered for the tolerance from now
        fresh_until = time.time() + TOLERANCE_S
    return datetime.fromtimestamp(fresh_until + CLOCK_MARGIN_S, UTC)


def _status_after(status: str, answer: PlatformAnswer | None) -> str:
    if isinstance(answer, Decision):
        return db.DECIDED
    return db.INFORMATION_REQUESTED if answer is not None else status
