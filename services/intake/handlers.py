"""Intake's Kafka subscriber: agency submissions published straight onto referrals.inbound."""

import json
import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.intake.domain import Submission, record_key
from services.intake.service import IntakeService
from shared import topics
from shared.events import describe_errors
from shared.kafka import dead_letter, record_position
from shared.reliability import Poison, process_or_dead_letter

log = logging.getLogger(__name__)


def parse_submission(raw: bytes) -> Submission:
    """A submission from a raw record; Poison naming the problem if it is not one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Poison(f"not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Poison("a submission must be a JSON object")
    try:
        submission = Submission.model_validate(body)
    except ValidationError as exc:
        raise Poison(f"invalid submission: {describe_errors(exc)}") from exc
    if submission.idempotency_key is None:
        submission = submission.model_copy(update={"idempotency_key": record_key(raw)})
    return submission


def register(broker: KafkaBroker, service: IntakeService, options: dict) -> None:
    """Subscribe to referrals.inbound; commit each record only once it is stored or dead-lettered."""

    @broker.subscriber(
        topics.REFERRALS_INBOUND, **options, description="Agency submissions as JSON objects.",
    )
    async def on_inbound(msg: KafkaMessage) -> None:
        raw = msg.raw_message.value or b""

        async def work() -> None:
            await service.submit([parse_submission(raw)], via="kafka")

        async def to_dlq(reason: str, attempts: int) -> None:
            await dead_letter(broker, topics.REFERRALS_INBOUND_DLQ, msg, reason, attempts)

        await process_or_dead_letter(work, to_dlq, what=record_position(msg))
