"""Intake's Kafka subscriber: agency submissions published straight onto referrals.inbound.

Records come in batches, and each must be signed by the agency it names (services/intake/inbound.py).
The batch's signed submissions are stored in one transaction with their webhook-ids, and Kafka
offsets are committed only after that commit. A record that is unsigned, badly signed, stale, not
a submission or for another agency is dead-lettered at once; a replayed webhook-id once the batch
is stored. Should the batch fail for a reason other than an outage, its submissions are stored one
by one, so one bad submission cannot take the others to the dead letters. While intake refuses
new work (services/intake/backpressure.py) the subscriber's partitions are paused, not read on.
"""

import logging
import time
from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.intake import db
from services.intake.inbound import Inbound, InboundPolicy, appended_at, check, parse_submission
from services.intake.service import IntakeService
from shared import topics
from shared.auth.records import claimed_agency
from shared.auth.signing import ActiveSecrets
from shared.kafka import dead_letter_record
from shared.reliability import Poison, process_or_dead_letter, until_done

__all__ = ["parse_submission", "register"]  # parse_submission: where its tests have always found it
log = logging.getLogger(__name__)
DeadLetter = Callable[..., Awaitable[None]]  # (raw record, its headers, reason, attempts=1)


def register(broker: KafkaBroker, service: IntakeService, options: dict, batch_size: int = 1000,
             policy: InboundPolicy | None = None):
    """Subscribe to referrals.inbound; commit a batch only once it is stored or dead-lettered.
    Returns the subscriber (its consumer is paused under backpressure)."""
    policy = policy or InboundPolicy()
    secrets = ActiveSecrets(service.sessions, policy.secrets_cache_s)
    forget_at = time.monotonic() + policy.forget_every_s

    async def dead_letter(raw, headers: dict, reason: str, attempts: int = 1) -> None:
        await dead_letter_record(broker, topics.REFERRALS_INBOUND_DLQ, raw, headers, reason, attempts)

    subscriber = broker.subscriber(topics.REFERRALS_INBOUND, **options, batch=True, max_records=batch_size,
                                   description="Agency submissions as JSON objects, signed (docs/kafka-submissions.md).")

    @subscriber
    async def on_inbound(msg: KafkaMessage) -> None:
        nonlocal forget_at
        batch = list(zip(msg.raw_message, msg.batch_headers, strict=True))
        known = await _secrets_of(secrets, [headers for _, headers in batch])
        good: list[tuple[Inbound, object, dict]] = []
        now = time.time()
        for raw, headers in batch:
            try:
                good.append((check(raw.value or b"", headers, known, appended_at(raw.timestamp, now),
                                   policy.tolerance_s, oldest=now - policy.replay_window_s), raw, headers))
            except Poison as exc:
                await dead_letter(raw, headers, str(exc))
            except Exception as exc:  # noqa: BLE001 - whatever a hostile record does, the partition moves on
                log.warning("record %s/%s/%s could not be checked", raw.topic, raw.partition, raw.offset,
                            exc_info=True)
                await dead_letter(raw, headers, "unauthenticated: the record could not be checked "
                                                f"({type(exc).__name__})")
        if good:
            await _store(service, good, dead_letter)
        if time.monotonic() >= forget_at:
            forget_at = time.monotonic() + policy.forget_every_s
            await _forget(service, policy.replay_window_s)

    return subscriber


async def _secrets_of(secrets: ActiveSecrets, headers: list[dict]) -> dict[str, list[str]]:
    """The active secrets of every agency the batch's records name: one query at most."""
    agencies, found = {a for h in headers if (a := claimed_agency(h))}, {}

    async def load() -> None:
        found.update(await secrets.of(agencies))

    if agencies:
        await until_done(load, "signing secrets")
    return found


def _webhook_id(inbound: Inbound, raw) -> db.WebhookId:
    signed = inbound.signed
    return db.WebhookId(signed.agency, signed.msg_id, signed.signed_at, db.Position(raw.topic, raw.partition,
                                                                                    raw.offset))


def _replayed(inbound: Inbound, first: db.Position) -> str:
    return f"unauthenticated: replayed webhook-id {inbound.signed.msg_id!r} (first accepted from {first})"


async def _store(service: IntakeService, good: list[tuple[Inbound, object, dict]], dead_letter: DeadLetter) -> None:
    """Store the batch's submissions and ids in one transaction; dead-letter its replays after it."""
    answers: list = []

    async def submit() -> None:
        # In record order: a key (or webhook-id) repeated within the batch is a repeat of its first record.
        answers[:] = await service.submit_signed([(i.submission, i.signed.principal) for i, _, _ in good],
                                                 [_webhook_id(i, raw) for i, raw, _ in good])

    try:
        await until_done(submit, f"batch of {len(good)}")
    except Exception:  # noqa: BLE001 - not an outage: find the bad submission by going one by one
        log.warning("a batch of %s submissions failed; storing them one by one", len(good), exc_info=True)
        for inbound, raw, headers in good:
            await process_or_dead_letter(
                lambda i=inbound, r=raw: _submit_one(service, i, r),
                lambda reason, attempts, r=raw, h=headers: dead_letter(r, h, reason, attempts),
                what=f"{raw.topic}/{raw.partition}/{raw.offset}")
        return
    for (inbound, raw, headers), answer in zip(good, answers, strict=True):
        if isinstance(answer, db.Position):
            await dead_letter(raw, headers, _replayed(inbound, answer))


async def _submit_one(service: IntakeService, inbound: Inbound, raw) -> None:
    [answer] = await service.submit_signed([(inbound.submission, inbound.signed.principal)],
                                           [_webhook_id(inbound, raw)])
    if isinstance(answer, db.Position):
        raise Poison(_replayed(inbound, answer))


async def _forget(service: IntakeService, window_s: float) -> None:
    """Forget ids older than the replay window; a failure waits for the next time (nothing depends on it now)."""
    try:
        forgotten = await service.forget_webhook_ids(window_s)
        log.info("forgot %s webhook-ids signed more than %.0f s ago", forgotten, window_s)
    except Exception:  # noqa: BLE001 - the batch is stored; pruning is housekeeping
        log.warning("could not forget old webhook-ids; will try again", exc_info=True)
