"""Dispatcher's Kafka subscribers: the router, and per platform a lane and its retry topic.

Every record is committed only after what came of it is published (an event, a retry, a
dead letter). A lane takes records in batches and delivers them concurrently, up to its
adapter's cap on reports in flight.
"""

import asyncio

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.dispatcher.outbound import Record
from services.dispatcher.service import DispatchService
from shared import topics
from shared.events import (Event, InvalidEvent, ReferralAppealed, ReferralEscalated, ReferralSubmitted, from_kafka,
                           to_kafka)
from shared.faults import crash_point
from shared.kafka import dead_letter_record
from shared.reliability import Poison, process_or_dead_letter

ROUTE_BATCH = 500  # records the router takes from a poll


def parse_event(headers: dict, raw: bytes) -> Event:
    try:
        return from_kafka(headers, raw)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc


def parse_referral(headers: dict, raw: bytes) -> ReferralSubmitted:
    event = parse_event(headers, raw)
    if not isinstance(event.data, ReferralSubmitted):
        raise Poison(f"expected referral.submitted, got {event.type}")
    return event.data


def to_dispatch(event: Event, record: Record) -> tuple[ReferralSubmitted, Record] | None:
    """What a record on referrals.submitted asks the router to dispatch, if anything.

    A submission is dispatched as it is; an escalation or an appeal carries the referral to
    dispatch again (its dispatch number >= 2), which goes on the lane as a referral.submitted
    record of its own. Other agency actions need nothing from the dispatcher.
    """
    if isinstance(event.data, ReferralSubmitted):
        return event.data, record
    if isinstance(event.data, ReferralEscalated | ReferralAppealed):
        again = event.data.referral
        key, value, headers = to_kafka(Event(id=event.id, source=event.source, actor=event.actor, time=event.time,
                                             data=again))
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
                       description="New referrals, routed to their lanes.")
    async def route(msg: KafkaMessage) -> None:
        # A poll's records are routed together: their lane records are acknowledged by the broker
        # together, not one round trip after another. Offsets are committed once all are routed.
        await asyncio.gather(*(_route_one(broker, service, raw, headers)
                               for raw, headers in zip(msg.raw_message, msg.batch_headers, strict=True)))

    for platform in platforms:
        _register_lane(broker, service, platform, lane_options)


async def _route_one(broker: KafkaBroker, service: DispatchService, raw, headers: dict[str, str]) -> None:
    record = as_record(raw, headers)

    async def work() -> None:
        wanted = to_dispatch(parse_event(record.headers, record.value), record)
        if wanted is not None:
            await service.route(*wanted)

    async def to_dlq(reason: str, attempts: int) -> None:
        await dead_letter_record(broker, topics.DISPATCH_DLQ, raw, headers, reason, attempts)

    await process_or_dead_letter(work, to_dlq, what=f"{raw.topic}/{raw.partition}/{raw.offset}")


def _register_lane(broker: KafkaBroker, service: DispatchService, platform: str, options: dict) -> None:
    group = topics.lane_group(platform)

    @broker.subscriber(topics.lane(platform), **{**options, "group_id": group}, batch=True,
                       description=f"Reports to deliver to {platform}.")
    async def deliver(msg: KafkaMessage) -> None:
        crash_point("dispatcher.lane_batch")  # the batches before this one delivered and committed
        records = [as_record(raw, headers) for raw, headers in zip(msg.raw_message, msg.batch_headers, strict=True)]
        await asyncio.gather(*(_deliver_one(service, r) for r in records))

    @broker.subscriber(topics.retry_lane(platform), **{**options, "group_id": topics.retry_group(platform)},
                       description=f"Reports to {platform} waiting for their next attempt.")
    async def release(msg: KafkaMessage) -> None:
        await service.release(platform, as_record(msg.raw_message, msg.headers))


async def _deliver_one(service: DispatchService, record: Record) -> None:
    async def work() -> None:
        await service.deliver(parse_referral(record.headers, record.value), record)

    async def to_dlq(reason: str, attempts: int) -> None:
        await service.outbound.dead_letter(record, reason)

    await process_or_dead_letter(work, to_dlq, what=f"{record.topic}/{record.partition}/{record.offset}")
