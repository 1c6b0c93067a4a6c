"""Poison records among valid ones on one partition: each goes to its dead-letter topic, with why
and after how many attempts, and the records behind it are processed (the partition keeps moving).

- referrals.inbound (one agency key): not JSON; JSON that is not a submission.
- referrals.submitted (referral ids that hash to one partition): a CloudEvent whose body is not
  JSON; JSON that is not a CloudEvent. Both the router (referrals.submitted.dlq) and outcomes
  (outcomes.dlq) read this topic, and both dead-letter them.
- referrals.dispatch (one referral's key), read by outcomes only: the same two, and a well-formed
  event the audit trail refuses (an actor longer than its column: Postgres raises, every time),
  retried the bounded number of times, spaced, then dead-lettered. It must never be cut to fit
  instead: the hash is chained over the whole actor, and `audit verify` would see tampering.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta
from itertools import count

from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text

from shared import topics
from shared.auth.records import signed_headers
from shared.events import (Category, Event, Platform, ReferralDispatched, ReferralDispatchFailed, ReferralSubmitted,
                           to_kafka)
from tests.faults.harness import Trail, audit_verify, running_stack, submissions
from tests.faults.kit import dead_letters, records
from tests.support import eventually, produce

PARTITIONS = 3
MAX_ATTEMPTS = 4  # process_or_dead_letter's bound
SPACING_FLOOR_S = 0.1 + 0.2 + 0.4  # equal jitter: at least half of 0.2, 0.4 and 0.8 s between the 4 attempts


async def test_poison_records_are_dead_lettered_and_the_records_behind_them_processed(tmp_path):
    async with running_stack(tmp_path) as stack:
        bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
        agency_items = submissions(3)
        secret = stack.credentials["agencies"]["NCA"]["signing_secret"]
        for value in (agency_items[0], b"{not json", {"hello": "world"}, agency_items[1], agency_items[2]):
            raw = _bytes(value)  # signed: the agency sent it, poison and all
            await produce(bootstrap, topics.REFERRALS_INBOUND, raw, key=b"one-agency-key",
                          headers=signed_headers("NCA", secret, raw))

        first, garbled, not_event, behind = _one_partition(4)
        await produce(bootstrap, topics.REFERRALS_SUBMITTED, *_record(_submitted(first)))
        await _cut_short(bootstrap, topics.REFERRALS_SUBMITTED, _submitted(garbled))
        await _without_headers(bootstrap, topics.REFERRALS_SUBMITTED, _submitted(not_event))
        await produce(bootstrap, topics.REFERRALS_SUBMITTED, *_record(_submitted(behind)))

        lone = uuid.uuid4()
        refused = _dispatched(lone, actor="platform:" + "x" * 400)  # audit_events.actor is varchar(300)
        valid = [_failed(lone), _dispatched(lone)]
        await produce(bootstrap, topics.REFERRALS_DISPATCH, *_record(valid[0]))
        await _cut_short(bootstrap, topics.REFERRALS_DISPATCH, _dispatched(lone))
        await _without_headers(bootstrap, topics.REFERRALS_DISPATCH, _dispatched(lone))
        await produce(bootstrap, topics.REFERRALS_DISPATCH, *_record(refused))
        await produce(bootstrap, topics.REFERRALS_DISPATCH, *_record(valid[1]))

        inbound = dead_letters(await records(bootstrap, topics.REFERRALS_INBOUND_DLQ, 2))
        routed = dead_letters(await records(bootstrap, topics.DISPATCH_DLQ, 2))
        outcomes = dead_letters(await records(bootstrap, topics.OUTCOMES_DLQ, 5))
        trail = Trail(stack.env["DATABASE_URL"])
        try:
            keys = {i["idempotency_key"] for i in agency_items} | {f"behind-{first}", f"behind-{behind}"}
            await eventually(lambda: trail.complete(keys), 120, "the valid records behind the poison", interval=0.5)
            recorded = await eventually(lambda: _recorded(trail, [e.id for e in valid]), 60, "the valid dispatch events")
        finally:
            await trail.close()
        verified = audit_verify(stack.env["DATABASE_URL"])
    print("dead letters (attempts, reason):", {topic: [(d["dlq_attempts"], d["dlq_reason"][:60]) for d in found]
                                               for topic, found in (("inbound", inbound), ("router", routed),
                                                                    ("outcomes", outcomes))})
    assert [(d["dlq_original_topic"], d["dlq_attempts"]) for d in inbound] == [(topics.REFERRALS_INBOUND, "1")] * 2
    assert "not valid JSON" in inbound[0]["dlq_reason"] and "invalid submission" in inbound[1]["dlq_reason"]
    assert [d["dlq_attempts"] for d in routed] == ["1", "1"] and all(d["dlq_reason"] for d in routed)
    by_topic = sorted((d["dlq_original_topic"], d["dlq_attempts"]) for d in outcomes)
    assert by_topic == sorted([(topics.REFERRALS_SUBMITTED, "1")] * 2 + [(topics.REFERRALS_DISPATCH, "1")] * 2
                              + [(topics.REFERRALS_DISPATCH, str(MAX_ATTEMPTS))])
    [always] = [d for d in outcomes if d["dlq_attempts"] == str(MAX_ATTEMPTS)]
    assert "value too long" in always["dlq_reason"] and always["value"] == _record(refused)[0]
    spent = datetime.fromisoformat(always["dlq_last_attempt_at"]) - datetime.fromisoformat(always["dlq_first_attempt_at"])
    print(f"the refused event's {MAX_ATTEMPTS} attempts were {spent.total_seconds():.2f}s apart, first to last")
    assert spent >= timedelta(seconds=SPACING_FLOOR_S), f"{MAX_ATTEMPTS} attempts within {spent}: not spaced"
    assert recorded and verified.returncode == 0, verified.stdout + verified.stderr


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def _record(event: Event) -> tuple[bytes, bytes, dict[str, str]]:
    """An event as produce() takes it: value, key, headers."""
    key, value, headers = to_kafka(event)
    return value, key, headers


async def _cut_short(bootstrap: str, topic: str, event: Event) -> None:
    """The event's CloudEvent headers over a body that is not JSON (cut short)."""
    value, key, headers = _record(event)
    await produce(bootstrap, topic, value[:20], key=key, headers=headers)


async def _without_headers(bootstrap: str, topic: str, event: Event) -> None:
    """The event's JSON body without its CloudEvent headers: not a CloudEvent."""
    value, key, _ = _record(event)
    await produce(bootstrap, topic, value, key=key)


def _one_partition(n: int) -> list[uuid.UUID]:
    """n referral ids whose keys hash to the same partition."""
    ids = (uuid.uuid4() for _ in count())
    chosen = [next(ids)]
    target = _partition(chosen[0])
    while len(chosen) < n:
        rid = next(ids)
        if _partition(rid) == target:
            chosen.append(rid)
    return chosen


def _partition(rid: uuid.UUID) -> int:
    return DefaultPartitioner()(str(rid).encode(), list(range(PARTITIONS)), [])


def _submitted(rid: uuid.UUID) -> Event:
    now = datetime.now(UTC)
    return Event(source="/agency/tests", actor="agency:NCA", data=ReferralSubmitted(
        referral_id=rid, agency="NCA", url=f"https://www.tiktok.com/@p/video/{rid.int % 10**12}",
        canonical_url=f"https://tiktok.com/@p/video/{rid.int % 10**12}", platform=Platform.tiktok,
        category=Category.people_smuggling, idempotency_key=f"behind-{rid}", received_via="kafka", submitted_at=now))


def _dispatched(rid: uuid.UUID, actor: str = "service:dispatcher") -> Event:
    return Event(source="/takedown/dispatcher", actor=actor, data=ReferralDispatched(
        referral_id=rid, platform=Platform.tiktok, adapter="tiktok", ticket_id=f"tiktok-{uuid.uuid4().hex[:8]}"))


def _failed(rid: uuid.UUID) -> Event:
    return Event(source="/takedown/dispatcher", actor="service:dispatcher", data=ReferralDispatchFailed(
        referral_id=rid, platform=Platform.tiktok, adapter="tiktok", reason="HTTP 503", permanent=False))


async def _recorded(trail: Trail, event_ids: list) -> bool:
    async with trail.engine.connect() as conn:
        found = (await conn.execute(text("SELECT count(*) FROM outcomes.audit_events WHERE event_id = ANY(:ids)"),
                                    {"ids": event_ids})).scalar()
    return found == len(event_ids)
