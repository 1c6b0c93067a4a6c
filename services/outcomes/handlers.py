"""Outcomes' Kafka subscriber: every lifecycle event goes into the audit trail.

Records come in batches: the whole batch is written in one transaction, and Kafka offsets are
committed only after that commit. Then one receipt (shared/receipts.py) tells the publishers
that the batch's events are in the trail (or in the dead letters), so that they stop keeping
them for a re-drive. Should a batch fail for a reason other than an outage, its
events are written one by one, so one bad event cannot take the others to the dead letters.
"""

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.outcomes.service import OutcomesService
from shared import topics
from shared.events import Event, InvalidEvent, from_kafka
from shared.faults import crash_point
from shared.kafka import dead_letter_record
from shared.receipts import send_receipt
from shared.reliability import Poison, process_or_dead_letter, until_done

LIFECYCLE = (topics.REFERRALS_SUBMITTED, topics.REFERRALS_DISPATCH, topics.TAKEDOWN_DECISIONS,
             topics.REFERRALS_LIFECYCLE)


def parse_event(headers: dict[str, str], body: bytes) -> Event:
    """The event in a record; Poison naming the problem if it is not one this trail can hold."""
    try:
        return from_kafka(headers, body)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc


def register(broker: KafkaBroker, service: OutcomesService, options: dict, batch_size: int = 1000) -> None:
    """Subscribe to the lifecycle topics; commit a batch only after the database commit."""

    @broker.subscriber(*LIFECYCLE, **options, batch=True, max_records=batch_size,
                       description="Referral lifecycle events to record.")
    async def on_lifecycle(msg: KafkaMessage) -> None:
        crash_point("outcomes.batch_received")  # the batches before this one recorded and committed
        events: list[tuple[Event, object, dict]] = []
        for raw, headers in zip(msg.raw_message, msg.batch_headers, strict=True):
            try:
                events.append((parse_event(headers, raw.value or b""), raw, headers))
            except Poison as exc:
                await dead_letter_record(broker, topics.OUTCOMES_DLQ, raw, headers, str(exc), 1)
        if events:
            await _record(broker, service, events)
        # Our own lifecycle events need no receipt: the scheduler makes them again from the trail.
        await send_receipt(broker, "outcomes", [h for raw, h in zip(msg.raw_message, msg.batch_headers, strict=True)
                                                if raw.topic != topics.REFERRALS_LIFECYCLE])


async def _record(broker: KafkaBroker, service: OutcomesService, events: list[tuple[Event, object, dict]]) -> None:
    """Record a batch in one transaction; should it fail for a reason other than an outage, one by one."""
    try:
        await until_done(lambda: service.record([e for e, _, _ in events]), f"batch of {len(events)}")
    except Exception:  # noqa: BLE001 - not an outage: find the bad event by going one by one
        for event, raw, headers in events:
            await process_or_dead_letter(
                lambda e=event: _record_one(service, e),
                lambda reason, attempts, r=raw, h=headers: dead_letter_record(
                    broker, topics.OUTCOMES_DLQ, r, h, reason, attempts),
                what=f"{raw.topic}/{raw.partition}/{raw.offset}")


async def _record_one(service: OutcomesService, event: Event) -> None:
    await service.record([event])
