"""Outcomes' Kafka subscriber: every lifecycle event goes into the audit trail."""

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from services.outcomes.service import OutcomesService
from shared import topics
from shared.events import Event, InvalidEvent, from_kafka
from shared.kafka import dead_letter, record_position
from shared.reliability import Poison, process_or_dead_letter

LIFECYCLE = (topics.REFERRALS_SUBMITTED, topics.REFERRALS_DISPATCH, topics.TAKEDOWN_DECISIONS)


def keep_body_as_bytes(msg: StreamMessage) -> bytes:
    """Leave the body to from_kafka: FastStream's JSON decoding of a body that is not JSON fails
    before the handler runs, and the record is redelivered forever instead of dead-lettered."""
    return msg.body


def parse_event(headers: dict[str, str], body: bytes) -> Event:
    """The event in a record; Poison naming the problem if it is not one this trail can hold."""
    # The shared parser has replaced undecodable header bytes with U+FFFD: an audit entry must
    # not carry an actor or source we had to guess, so such a record is dead-lettered.
    if garbled := sorted(k for k, v in headers.items() if k.startswith("ce_") and "\ufffd" in v):
        raise Poison(f"header {garbled[0]!r} is not UTF-8 text")
    try:
        event = from_kafka(headers, body)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc
    if event.time.tzinfo is None:  # it could not be ordered against the others
        raise Poison("ce_time has no UTC offset; CloudEvents times are RFC 3339")
    return event


def register(broker: KafkaBroker, service: OutcomesService, options: dict) -> None:
    """Subscribe to the lifecycle topics; commit a record only after the database commit."""

    @broker.subscriber(
        *LIFECYCLE, **options, decoder=keep_body_as_bytes, description="Referral lifecycle events to record.",
    )
    async def on_lifecycle(msg: KafkaMessage) -> None:
        async def work() -> None:
            await service.record(parse_event(msg.headers, msg.raw_message.value or b""))

        async def to_dlq(reason: str, attempts: int) -> None:
            await dead_letter(broker, topics.OUTCOMES_DLQ, msg, reason, attempts)

        await process_or_dead_letter(work, to_dlq, what=record_position(msg))
