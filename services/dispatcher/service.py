"""Dispatcher's service layer, the way out: remember what each routed event asks to deliver (a
report, or an agency's answer to a platform's question), put it on its platform's lane, deliver
it, and record what came of it. What platforms answer back: decisions.py.

A lane batch is taken in one transaction and delivered concurrently (up to the lane's cap on
deliveries in flight); each attempt is recorded as soon as it ends, in one transaction with the
others ending meanwhile (recording.py, a group commit): a delivery held back by its platform's
Retry-After or circuit never holds back what came of the others.

Every delivery is a row in Postgres (deliveries.py) before its lane record is published, and its
events go through the outbox in the transaction that changes its state: losing any Kafka record
only delays a delivery, which the reconciler puts back on its lane (reconciler.py).
"""

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.dispatcher import db, domain, recording
from services.dispatcher.accumulator import Accumulator
from services.dispatcher.adapters.base import DecisionMode, DeliveryError, PlatformAdapter
from services.dispatcher.adapters.registry import AdapterRegistry, UnknownPlatform
from services.dispatcher.deliveries import ANSWER, REPORT, Owed
from services.dispatcher.lanes import Delivered, GaveUp, Lane, RetryLater
from services.dispatcher.outbound import Outbound, Record, message
from services.dispatcher.recording import Attempt
from shared.events import Event, InformationSupplied, Platform, ReferralSubmitted
from shared.faults import crash_point
from shared.reliability import process_or_dead_letter, until_done
from shared.topics import REFERRALS_DISPATCH, TAKEDOWN_DECISIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    redrive_after_s: float = 30.0  # a due delivery not taken by its lane within this is put back on it
    webhook_poll_after_s: float = 600.0  # a webhook platform's ticket undecided this long is polled


class DispatchService:
    def __init__(self, registry: AdapterRegistry, lanes: Mapping[Platform, Lane], outbound: Outbound,
                 engine: AsyncEngine, timing: Timing = Timing(), wake_relay=lambda: None):
        self.registry, self.lanes, self.outbound, self.engine = registry, lanes, outbound, engine
        self.timing, self.wake_relay = timing, wake_relay
        self._recording: Accumulator[Attempt, None] = Accumulator(self._conclude_group, size=256, wait_s=0.005)

    async def route(self, wanted: Sequence[tuple[Event, Record]]) -> None:
        """Remember the deliveries a batch of events asks for (one transaction), then put the due
        ones on their lanes; a referral no adapter serves is recorded as failed instead."""
        async with self.engine.begin() as conn:
            reports, refused = self._reports(wanted)
            to_lane = await db.DELIVERIES.owe(conn, [o for o, _ in reports], self.timing.redrive_after_s)
            answers, unanswerable = await self._answers(conn, wanted)
            to_lane |= await db.DELIVERIES.owe(conn, [o for o, _ in answers], self.timing.redrive_after_s)
            await db.OUTBOX.queue(conn, refused + unanswerable)
        if refused or unanswerable:
            self.wake_relay()
        await asyncio.gather(*(self.outbound.to_lane(o.platform, record) for o, record in reports + answers
                               if o.event_id in to_lane))

    def _reports(self, wanted: Sequence[tuple[Event, Record]]) -> tuple[list, list]:
        owed, refused = [], []
        for event, record in wanted:
            if not isinstance(event.data, ReferralSubmitted):
                continue
            referral = event.data
            try:
                self.registry.for_platform(referral.platform)
            except UnknownPlatform as exc:
                refused.append(message(REFERRALS_DISPATCH, domain.dispatch_failed(
                    referral.referral_id, referral.platform, "none", str(exc), 0, True, referral.dispatch)))
                continue
            owed.append((Owed(event.id, REPORT, referral.referral_id, referral.dispatch, referral.platform.value,
                              record.key, record.value, record.headers), record))
        return owed, refused

    async def _answers(self, conn: AsyncConnection, wanted: Sequence[tuple[Event, Record]]) -> tuple[list, list]:
        owed, refused = [], []
        for event, record in wanted:
            if not isinstance(event.data, InformationSupplied):
                continue
            platform = await db.platform_of(conn, event.referral_id)
            if platform is None:
                refused.append(message(TAKEDOWN_DECISIONS, domain.forward_failed(
                    event.referral_id, event.id, None, "none", "no report of this referral was dispatched", 0, True)))
                continue
            owed.append((Owed(event.id, ANSWER, event.referral_id, 0, platform, record.key, record.value,
                              record.headers), record))
        return owed, refused

    async def take(self, records: Sequence[Record]) -> list[Record]:
        """The records of a lane batch still due (others were delivered already: a re-drive or a
        redelivery), once each, held for its lane a while before the reconciler would put it back.
        (Another instance may hold a copy too: the platform's idempotency key makes that one report.)"""
        given = [(r.event_id, r.attempt) for r in records if r.event_id is not None]
        async with self.engine.begin() as conn:
            due = await db.DELIVERIES.take(conn, given, self._hold_s(records))
        taken, seen = [], set()
        for record in records:
            if record.event_id is None or (record.event_id in due and record.event_id not in seen):
                taken.append(record)
                seen.add(record.event_id)
        return taken

    def _hold_s(self, records: Sequence[Record]) -> float:
        """How long a lane may take over a batch before its deliveries count as stuck: the bound, and
        the time its platform's rate limit needs for the batch."""
        lane = self.lanes.get(Platform(self._platform_of(records[0]))) if records else None
        rate = lane.bucket.rate if lane is not None else float("inf")
        return self.timing.redrive_after_s + len(records) / rate

    async def attempt(self, event: Event, record: Record) -> Attempt:
        """One delivery attempt from a lane (a report or an answer): what came of it, not yet recorded."""
        if isinstance(event.data, InformationSupplied):
            return await self._forward(event, record)
        referral = event.data
        lane = self.lanes[referral.platform]
        result = await lane.deliver(referral, record.attempt)
        poll = self._poll_after(lane.adapter, result.receipt.answer is None) if isinstance(result, Delivered) else None
        return Attempt(event, record, result, lane.adapter.slug, referral.platform, poll_after_s=poll)

    async def _forward(self, event: Event, record: Record) -> Attempt:
        """Forward an agency's answer to the ticket that asked (the latest ticket of the referral)."""
        async with self.engine.connect() as conn:
            ticket = await db.ticket_to_answer(conn, event.referral_id)
        if ticket is None:
            lane = next(iter(self.lanes.values()))  # any lane's policy: the report has not reached a platform yet
            result = lane.policy.after_failure(DeliveryError("the report has no ticket yet", permanent=False),
                                               record.attempt, time.time())
            return Attempt(event, record, result, "none", None)
        platform = Platform(ticket.platform)
        lane = self.lanes[platform]
        result = await lane.forward(ticket.ticket_id, event.data, str(event.id), event.referral_id, record.attempt)
        return Attempt(event, record, result, lane.adapter.slug, platform, ticket.ticket_id)

    async def record(self, attempt: Attempt) -> None:
        """Record an attempt once it ends, together with those ending meanwhile; raises what recording
        them raised."""
        await self._recording.submit(attempt)

    async def _conclude_group(self, attempts: list[Attempt]) -> list[None]:
        await self.conclude(attempts)
        return [None] * len(attempts)

    async def conclude(self, attempts: Sequence[Attempt]) -> None:
        """Record what came of a lane batch's attempts in one transaction (dead letters of those given
        up published first), then park the retries on their retry topic."""
        reported = sum(a.reported for a in attempts)
        for _ in range(reported):
            crash_point("dispatcher.reported")  # the platform has it; nothing of it stored or published
        await asyncio.gather(*(self._dead_letter(a) for a in attempts if isinstance(a.result, GaveUp)))
        stored = await self._store_all(attempts)
        self.wake_relay()
        retries = [a for a in stored if isinstance(a.result, RetryLater)]
        await until_done(lambda: asyncio.gather(*(self.outbound.to_retry(
            self._platform_of(a.record), a.record, a.result.not_before, a.result.reason) for a in retries)),
            f"parking {len(retries)} deliveries")
        for _ in range(reported):
            crash_point("dispatcher.published")  # recorded; the lane's offset not yet committed

    async def _dead_letter(self, attempt: Attempt) -> None:
        """Publish a given-up delivery's dead letter, waiting out outages. A dead letter that cannot be
        published otherwise is logged, not raised: the failure is stored in Postgres all the same (its
        delivery failed, its event in the outbox), and raising would send the batch round again."""
        record = attempt.record
        try:
            await until_done(lambda: self.outbound.dead_letter(record, attempt.result.reason),
                             f"dead-lettering {record.topic}/{record.partition}/{record.offset}")
        except Exception:  # noqa: BLE001 - see above: its failure is recorded in Postgres
            log.exception("dead letter of %s/%s/%s (referral %s) not published; its failure is recorded",
                          record.topic, record.partition, record.offset, attempt.event.referral_id)

    async def _store_all(self, attempts: Sequence[Attempt]) -> list[Attempt]:
        """Store the attempts in one transaction, waiting out outages; if that fails otherwise, one by
        one, giving up any that cannot be stored. Those stored."""
        try:
            await until_done(lambda: self._store(attempts), f"recording {len(attempts)} deliveries")
            return list(attempts)
        except Exception:  # noqa: BLE001 - not an outage: find the bad one by going one by one
            log.exception("recording %s deliveries failed; recording them one by one", len(attempts))
        stored: list[Attempt] = []
        for attempt in attempts:
            async def one(a: Attempt = attempt) -> None:
                await self._store([a])
                stored.append(a)

            await process_or_dead_letter(one, lambda reason, _, a=attempt: self.give_up(a.record, reason),
                                         what=f"{attempt.record.topic}/{attempt.record.partition}/{attempt.record.offset}")
        return stored

    async def _store(self, attempts: Sequence[Attempt]) -> None:
        if attempts:
            async with self.engine.begin() as conn:
                await recording.store(conn, attempts, self.timing.redrive_after_s)

    async def give_up(self, record: Record, reason: str) -> None:
        """A lane record no attempt could process (not a platform's refusal: an error of ours or a
        record that is not a delivery): dead-letter it and record its delivery, if any, as failed."""
        await self.outbound.dead_letter(record, reason)
        if record.event_id is None:
            return
        async with self.engine.begin() as conn:
            row = (await db.DELIVERIES.fail(conn, [record.event_id])).get(record.event_id)
            if row is None:
                return
            platform, adapter = Platform(row.platform), self.lanes[Platform(row.platform)].adapter.slug
            if row.kind == REPORT:
                failed = message(REFERRALS_DISPATCH, domain.dispatch_failed(
                    row.referral_id, platform, adapter, reason, record.attempt, True, row.dispatch))
            else:
                failed = message(TAKEDOWN_DECISIONS, domain.forward_failed(
                    row.referral_id, record.event_id, platform, adapter, reason, record.attempt, True))
            await db.OUTBOX.queue(conn, [failed])
        self.wake_relay()

    @staticmethod
    def _platform_of(record: Record) -> str:
        return record.topic.removeprefix("dispatch.").removesuffix(".retry")

    def _poll_after(self, adapter: PlatformAdapter, undecided: bool) -> float | None:
        """When to poll a new ticket: polling platforms at their interval; a webhook platform with a
        status API after the bound within which its callback should have come; others never."""
        if not undecided:
            return None
        if adapter.decisions in (DecisionMode.polling, DecisionMode.response):
            return adapter.config.poll_interval_s
        if adapter.decisions is DecisionMode.webhook and adapter.has_status_api:
            return self.timing.webhook_poll_after_s
        return None

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
