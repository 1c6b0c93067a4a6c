"""Intake's Kafka subscriber: agency submissions published straight onto referrals.inbound.

Records come in batches: the batch's submissions are stored in one transaction, and Kafka offsets
are committed only after that commit. A record that is not a submission is dead-lettered at once;
should the batch fail for a reason other than an outage, its submissions are stored one by one,
so one bad submission cannot take the others to the dead letters.
"""

import json
import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.intake.domain import Submission, record_key
from services.intake.service import IntakeService
from shared import topics
from shared.events import describe_errors
from shared.kafka import dead_letter_record
from shared.reliability import Poison, process_or_dead_letter, until_done

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


def register(broker: KafkaBroker, service: IntakeService, options: dict, batch_size: int = 1000) -> None:
    """Subscribe to referrals.inbound; commit a batch only once it is stored or dead-lettered."""

    @broker.subscriber(topics.REFERRALS_INBOUND, **options, batch=True, max_records=batch_size,
                       description="Agency submissions as JSON objects.")
    async def on_inbound(msg: KafkaMessage) -> None:
        submissions: list[tuple[Submission, object, dict]] = []
        for raw, headers in zip(msg.raw_message, msg.batch_headers, strict=True):
            try:
                submissions.append((parse_submission(raw.value or b""), raw, headers))
            except Poison as exc:
                await dead_letter_record(broker, topics.REFERRALS_INBOUND_DLQ, raw, headers, str(exc), 1)
        if not submissions:
            return
        try:
            # In record order: a key repeated within the batch is a duplicate of its first record.
            await until_done(lambda: service.submit([s for s, _, _ in submissions], via="kafka"),
                             f"batch of {len(submissions)}")
        except Exception:  # noqa: BLE001 - not an outage: find the bad submission by going one by one
            log.warning("a batch of %s submissions failed; storing them one by one", len(submissions), exc_info=True)
            for submission, raw, headers in submissions:
                await process_or_dead_letter(
                    lambda s=submission: _submit_one(service, s),
                    lambda reason, attempts, r=raw, h=headers: dead_letter_record(
                        broker, topics.REFERRALS_INBOUND_DLQ, r, h, reason, attempts),
                    what=f"{raw.topic}/{raw.partition}/{raw.offset}")


async def _submit_one(service: IntakeService, submission: Submission) -> None:
    await service.submit([submission], via="kafka")
