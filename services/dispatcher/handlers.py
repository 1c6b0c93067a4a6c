"""Dispatcher's Kafka subscriber: every referral.submitted is delivered to its platform."""

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.dispatcher.service import DispatchService
from shared import topics
from shared.events import InvalidEvent, ReferralSubmitted, from_kafka
from shared.kafka import dead_letter, record_position
from shared.reliability import Poison, process_or_dead_letter


def parse_referral(headers: dict, raw: bytes) -> ReferralSubmitted:
    try:
        event = from_kafka(headers, raw)
    except InvalidEvent as exc:
        raise Poison(str(exc)) from exc
    if not isinstance(event.data, ReferralSubmitted):
        raise Poison(f"expected referral.submitted, got {event.type}")
    return event.data


def register(broker: KafkaBroker, service: DispatchService, options: dict) -> None:
    """Subscribe to referrals.submitted; commit a record once its outcome is published."""

    @broker.subscriber(
        topics.REFERRALS_SUBMITTED, **options, description="Referrals to deliver to their platforms.",
    )
    async def on_submitted(msg: KafkaMessage) -> None:
        async def work() -> None:
            await service.dispatch(parse_referral(msg.headers, msg.raw_message.value or b""))

        async def to_dlq(reason: str, attempts: int) -> None:
            await dead_letter(broker, topics.DISPATCH_DLQ, msg, reason, attempts)

        await process_or_dead_letter(work, to_dlq, what=record_position(msg))
