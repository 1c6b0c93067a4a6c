"""Kafka plumbing: broker factory, topic creation, CloudEvent publishing, dead letters."""

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.middlewares import AckPolicy

from shared.events import Event, to_kafka
from shared.redact import redact, redact_headers
from shared.topics import TOPIC_CONFIGS
from shared.reliability import dead_letter_attempts
from shared.settings import BaseServiceSettings

log = logging.getLogger(__name__)


def make_broker(settings: BaseServiceSettings, client_id: str) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas; nothing connects until start()."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        logger=logging.getLogger(f"faststream.{client_id}"),
    )


async def tolerant_headers(record, original_parser):
    """Make header values decodable before FastStream decodes them.

    FastStream's parser raises on a header that is not UTF-8, before any handler runs, and the
    record is then committed past unprocessed. Replacing undecodable bytes lets our handler see
    the record and accept it or dead-letter it; the value bytes are never touched.
    """
    for one in record if isinstance(record, tuple) else (record,):  # a batch is a tuple of records
        headers = list(one.headers or ())
        if any(not _utf8(v) for _, v in headers):
            one.headers = tuple((k, (v or b"").decode("utf-8", "replace").encode()) for k, v in headers)
    return await original_parser(record)


def keep_body_as_bytes(msg) -> bytes | list[bytes]:
    """Leave bodies undecoded: FastStream decodes a body marked JSON before the handler runs, and
    one that is not JSON then fails outside our dead-letter logic and is redelivered forever."""
    return msg.body


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
        return value is not None
    except UnicodeDecodeError:
        return False


def consumer_options(settings: BaseServiceSettings, group_id: str) -> dict:
    """Subscriber options for a consumer that must not lose records.

    A record is committed only after its handler returned (its effects are done or it was
    dead-lettered); on an unexpected error it is sought back and redelivered.
    """
    return {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "parser": tolerant_headers,
        "decoder": keep_body_as_bytes,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "batch_timeout_ms": settings.kafka_batch_wait_ms,  # ignored by a consumer of one record at a time
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


async def ensure_topics(settings: BaseServiceSettings, topics: Iterable[str]) -> None:
    """Create the topics a service owns with explicit partition counts (and TOPIC_CONFIGS), if missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await create_topics(admin, settings, [t for t in topics if t not in existing])
    finally:
        await admin.close()


async def create_topics(admin: AIOKafkaAdminClient, settings: BaseServiceSettings, names: Iterable[str]) -> list[str]:
    """Create topics as the service configures them (TOPIC_PARTITIONS, TOPIC_CONFIGS); those created."""
    missing = [NewTopic(t, settings.topic_partitions, settings.topic_replication_factor,
                        topic_configs=dict(TOPIC_CONFIGS.get(t, {})))
               for t in dict.fromkeys(names)]
    if not missing:
        return []
    try:
        response = await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        log.info("topics created concurrently by another instance")
        return []
    created = [name for name, code, *_ in response.topic_errors if code == 0]
    log.info("created topics %s", created)
    return created


async def start_broker(broker: KafkaBroker) -> None:
    """Connect, then start every subscriber at once.

    FastStream's broker.start() starts them one after another, and each waits for its consumer
    group's first assignment (about half the session timeout): with a lane per platform that
    added up to half a minute per start. FastStream is pinned; this relies on its subscriber list.
    """
    await broker.connect()
    await asyncio.gather(*(subscriber.start() for subscriber in broker.subscribers))
    for publisher in broker.publishers:
        await publisher.start()
    broker.running = True


async def publish_event(broker: KafkaBroker, topic: str, event: Event) -> None:
    """Publish one lifecycle event, keyed by referral id, and wait for the broker's ack."""
    key, value, headers = to_kafka(event)
    await broker.publish(value, topic=topic, key=key, headers=headers)


def record_position(msg: KafkaMessage) -> str:
    """topic/partition/offset of a consumed record, for logs and dead letters."""
    raw = msg.raw_message
    return f"{raw.topic}/{raw.partition}/{raw.offset}"


async def dead_letter(
    broker: KafkaBroker, topic: str, msg: KafkaMessage, reason: str, attempts: int
) -> None:
    """Send a record we cannot process to a dead-letter topic, with why and where it came from."""
    await dead_letter_record(broker, topic, msg.raw_message, msg.headers or {}, reason, attempts)


async def dead_letter_record(broker: KafkaBroker, topic: str, raw, decoded_headers: dict, reason: str,
                             attempts: int) -> None:
    """dead_letter for one record of a batch: the raw record and its decoded headers.

    The copied headers lose any credential header, and they and the reason any secret (shared/redact.py)."""
    headers, reason = redact_headers(decoded_headers), redact(reason)
    headers.update(
        {
            "dlq_reason": reason[:2000].encode("utf-8", "backslashreplace").decode(),  # a surrogate, escaped
            "dlq_original_topic": raw.topic,
            "dlq_original_partition": str(raw.partition),
            "dlq_original_offset": str(raw.offset),
            "dlq_attempts": str(attempts),
            "dlq_failed_at": datetime.now(UTC).isoformat(),
        }
    )
    if times := dead_letter_attempts.get():  # process_or_dead_letter says when it tried
        headers.update({"dlq_first_attempt_at": times.first.isoformat(), "dlq_last_attempt_at": times.last.isoformat()})
    try:
        await broker.publish(raw.value or b"", topic=topic, key=raw.key, headers=headers)
    except MessageSizeTooLargeError:
        # The record was within the limit; with these headers it is not. Dead-letter it without its
        # value, which stays where the headers say (else this record would be retried for ever).
        headers["dlq_value_omitted"] = f"{len(raw.value or b'')} bytes, too large to copy with these headers"
        await broker.publish(b"", topic=topic, key=raw.key, headers=headers)
    log.warning("dead-lettered %s/%s/%s to %s: %s", raw.topic, raw.partition, raw.offset, topic, reason)
