"""Everything the dispatcher publishes straight onto Kafka (lane and retry records, dead letters),
and its events as outbox messages (they are published by the relay, shared/relay.py)."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from faststream.kafka import KafkaBroker

from shared import topics
from shared.events import Event, to_kafka
from shared.outbox import Message
from shared.redact import redact, redact_headers

ATTEMPT = "x-takedown-attempt"
NOT_BEFORE = "x-takedown-not-before"
LAST_ERROR = "x-takedown-last-error"


@dataclass(frozen=True)
class Record:
    """A referral.submitted record as it travels through a lane, with its delivery headers."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @property
    def attempt(self) -> int:
        return int(self.headers.get(ATTEMPT, "1"))

    @property
    def event_id(self) -> UUID | None:
        """The id of the event the record carries (its delivery's key), if it has a valid one."""
        try:
            return UUID(self.headers.get("ce_id", ""))
        except ValueError:
            return None

    @property
    def not_before(self) -> float:
        return float(self.headers.get(NOT_BEFORE, "0"))

    def with_headers(self, **changes: str) -> "Record":
        return replace(self, headers={**self.headers, **changes})


def message(topic: str, event: Event) -> Message:
    """An event as the outbox keeps it, to be published on topic."""
    return Message(topic, *to_kafka(event))


class Outbound:
    def __init__(self, broker: KafkaBroker):
        self.broker = broker

    async def to_lane(self, platform: str, record: Record) -> None:
        """Queue a report on its platform's lane."""
        await self._send(topics.lane(platform), record)

    async def to_retry(self, platform: str, record: Record, not_before: float, error: str) -> None:
        """Park a report until not_before (epoch seconds) with its next attempt number."""
        await self._send(topics.retry_lane(platform), record.with_headers(
            **{ATTEMPT: str(record.attempt + 1), NOT_BEFORE: f"{not_before:.3f}", LAST_ERROR: redact(error)[:500]}))

    async def repark(self, platform: str, record: Record) -> None:
        """Send a parked report round its retry topic again, unchanged (it is not due yet)."""
        await self._send(topics.retry_lane(platform), record)

    async def dead_letter(self, record: Record, reason: str, topic: str = topics.DELIVERY_DLQ) -> None:
        """Keep a report no platform would take, with why, how often we tried and where it was.

        Its headers lose any credential header, and they and the reason any secret (shared/redact.py)."""
        cleaned = replace(record, headers=redact_headers(record.headers))
        await self._send(topic, cleaned.with_headers(
            dlq_reason=redact(reason)[:2000], dlq_original_topic=record.topic,
            dlq_original_partition=str(record.partition), dlq_original_offset=str(record.offset),
            dlq_attempts=str(record.attempt), dlq_failed_at=datetime.now(UTC).isoformat()))

    async def _send(self, topic: str, record: Record) -> None:
        await self.broker.publish(record.value, topic=topic, key=record.key, headers=record.headers)
