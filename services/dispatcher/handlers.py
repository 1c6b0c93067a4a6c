"""Dispatcher's Kafka subscribers: the router, and per platform a lane and its retry topic.

Every record is committed only after what came of it is stored or published (a delivery owed,
an event in the outbox, a retry, a dead letter). A lane takes records in batches, delivers them
concurrently, up to its adapter's cap on deliveries in flight, and records what came of each as
soon as it ends, in one transaction with those ending meanwhile; the batch is committed once all are.
"""

import asyncio

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.dispatcher.outbound import Record
from services.dispatcher.recording import Attempt
from services.dispatcher.service import DispatchService
from shared import topics
from shared.events import (Event, InformationSupplied, InvalidEvent, ReferralAppealed, ReferralEscalated,
                           ReferralSubmitted, from_kafka, to_kafka)
from shared.faults import crash_point
from shared.kafka import dead_letter_record
from shared.receipts import send_receipt
from shared.reliability import Poison, process_or_dead_letter, until_done

ROUTE_BATCH = 500  # records the router takes from a poll


def parse_event(headers: dict, raw: bytes) -> Event:
    try:
        return from_kafka(headers, raw)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc


def parse_delivery(headers: dict, raw: bytes) -> Event:
    """A lane record's event: a referral to report or an agency's answer to forward."""
    event = parse_event(headers, raw)
    if not isinstance(event.data, ReferralSubmitted | InformationSupplied):
        raise Poison(f"expected referral.submitted or referral.information_supplied, got {event.type}")
    return event


def to_dispatch(event: Event, record: Record) -> tuple[Event, Record] | None:
    """What a record on referrals.submitted asks the dispatcher to deliver, if anything.

    A submission is reported as it is; an escalation or an appeal carries the referral to
    dispatch again (its dispatch number >= 2), which goes on the lane as a referral.submitted
    record of its own, under the escalation's event id; an answer to a platform's question is
    forwarded to it. Other agency actions need nothing from the dispatcher.
    """
    if isinstance(event.data, ReferralSubmitted | InformationSupplied):
        return event, record
    if isinstance(event.data, ReferralEscalated | ReferralAppealed):
        again = Event(id=event.id, source=event.source, actor=event.actor, time=event.time, data=event.data.referral)
        key, value, headers = to_kafka(again)
        return again, Record(key=key, value=value, headers=headers, topic=record.topic,
                             partition=record.partition, offset=record.offset)
    return None


def as_record(raw, headers: dict[str, str]) -> Record:
    return Record(key=raw.key, value=raw.value or b"", headers=dict(headers), topic=raw.topic,
                  partition=raw.partition, offset=raw.offset)


def register(broker: KafkaBroker, service: DispatchService, options: dict, lane_options: dict,
             platforms: tuple[str, ...]) -> None:
    """Subscribe the router, and a lane and retry consumer for each platform."""

    @broker.subscriber(topics.REFERRALS_SUBMITTED, **options, batch=True, max_records=ROUTE_BATCH,
                       description="New referrals and agency actions, routed to their lanes.")
    async def route(msg: KafkaMessage) -> None:
        # A poll's deliveries are remembered in one transaction and their lane records published
        # together; then one receipt tells intake they are ours. Offsets are committed after both.
        raws = list(zip(msg.raw_message, msg.batch_headers, strict=True))
        wanted = [w for raw, headers in raws if (w := await _wanted(broker, raw, headers)) is not None]
        try:
            await until_done(lambda: service.route(wanted), f"routing {len(wanted)} records")
        except Exception:  # noqa: BLE001 - not an outage: find the bad record by going one by one
            for event, record in wanted:
                await process_or_dead_letter(lambda w=(event, record): service.route([w]),
                                             lambda reason, _, r=record: service.outbound.dead_letter(r, reason, topics.DISPATCH_DLQ),
                                             what=f"{record.topic}/{record.partition}/{record.offset}")
        await send_receipt(broker, "dispatcher", msg.batch_headers)

    for platform in platforms:
        _register_lane(broker, service, platform, lane_options)


async def _wanted(broker: KafkaBroker, raw, headers: dict[str, str]) -> tuple[Event, Record] | None:
    """What a routed record asks for; a record that is not an event goes to the dead letters."""
    record = as_record(raw, headers)
    try:
        return to_dispatch(parse_event(record.headers, record.value), record)
    except Poison as exc:
        await dead_letter_record(broker, topics.DISPATCH_DLQ, raw, headers, str(exc), 1)
        return None


def _register_lane(broker: KafkaBroker, service: DispatchService, platform: str, options: dict) -> None:
    group = topics.lane_group(platform)

    @broker.subscriber(topics.lane(platform), **{**options, "group_id": group}, batch=True,
                       description=f"Reports and answers to deliver to {platform}.")
    async def deliver(msg: KafkaMessage) -> None:
        crash_point("dispatcher.lane_batch")  # the batches before this one delivered and committed
        records = [as_record(raw, headers) for raw, headers in zip(msg.raw_message, msg.batch_headers, strict=True)]
        due: list[Record] = []

        async def take() -> None:
            due[:] = await service.take(records)

        await until_done(take, f"taking {len(records)} records on {platform}")
        ended = await asyncio.gather(*(deliver_and_record(service, r) for r in due), return_exceptions=True)
        failures = [e for e in ended if e is not None]
        if failures:  # all the others ended first: none still under way when the batch is read again
            raise failures[0]

    @broker.subscriber(topics.retry_lane(platform), **{**options, "group_id": topics.retry_group(platform)},
                       description=f"Deliveries to {platform} waiting for their next attempt.")
    async def release(msg: KafkaMessage) -> None:
        await service.release(platform, as_record(msg.raw_message, msg.headers))


async def deliver_and_record(service: DispatchService, record: Record) -> None:
    """Attempt one delivery of a lane batch and record what came of it."""
    attempt = await _attempt(service, record)
    if attempt is not None:
        await service.record(attempt)


async def _attempt(service: DispatchService, record: Record) -> Attempt | None:
    """One delivery of a lane batch; None if its record went to the dead letters instead (it is not a
    delivery, or attempting it kept failing with an error of ours)."""
    attempted: list[Attempt] = []

    async def work() -> None:
        attempted.append(await service.attempt(parse_delivery(record.headers, record.value), record))

    async def to_dlq(reason: str, attempts: int) -> None:
        await service.give_up(record, reason)

    await process_or_dead_letter(work, to_dlq, what=f"{record.topic}/{record.partition}/{record.offset}")
    return attempted[0] if attempted else None
