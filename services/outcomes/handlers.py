"""Outcomes' Kafka subscriber: every lifecycle event goes into the audit trail."""

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.outcomes.service import OutcomesService
from shared import topics
from shared.events import Event, InvalidEvent, from_kafka
from shared.kafka import dead_letter, record_position
from shared.reliability import Poison, process_or_dead_letter

LIFECYCLE = (topics.REFERRALS_SUBMITTED, topics.REFERRALS_DISPATCH, topics.TAKEDOWN_DECISIONS)


def parse_event(headers: dict[str, str], body: bytes) -> Event:
    """The event in a record; Poison naming the problem if it is not one this trail can hold."""
    try:
        return from_kafka(headers, body)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc


def register(broker: KafkaBroker, service: OutcomesService, options: dict) -> None:
    """Subscribe to the lifecycle topics; commit a record only after the database commit."""

    @broker.subscriber(
        *LIFECYCLE, **options, description="Referral lifecycle events to record.",
    )
    async def on_lifecycle(msg: KafkaMessage) -> None:
        async def work() -> None:
            await service.record(parse_event(msg.headers, msg.raw_message.value or b""))

        async def to_dlq(reason: str, attempts: int) -> None:
            await dead_letter(broker, topics.OUTCOMES_DLQ, msg, reason, attempts)

        await process_or_dead_letter(work, to_dlq, what=record_position(msg))
