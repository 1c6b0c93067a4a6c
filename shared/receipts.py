"""Receipts: a reader of lifecycle events tells their publishers which events it has handled.

After a batch is durably handled (recorded, routed, or dead-lettered: a dead letter is kept and
replayed by an operator), its reader publishes one receipt record on `takedown.receipts`: the
reader's name and the batch's event ids. A publisher reads the receipts and drops from its
outbox (shared/outbox.py) what every reader has; what stays unconfirmed is published again.

A lost receipt costs one needless re-publication, which readers ignore by event id. A forged
receipt could end a re-drive early: only the services write to this topic (Kafka ACLs on a real
cluster, docs/security.md).
"""

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from uuid import UUID

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared import topics
from shared.outbox import Outbox
from shared.reliability import until_done

log = logging.getLogger(__name__)
IDS_PER_RECORD = 5000  # about 200 KB of ids, well under a broker's default record size
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def send_receipt(broker: KafkaBroker, by: str, headers: Iterable[dict[str, str]]) -> None:
    """Confirm the events of a handled batch (given by their records' headers) as service `by`."""
    ids = [h["ce_id"] for h in headers if h.get("ce_id")]
    for start in range(0, len(ids), IDS_PER_RECORD):
        body = json.dumps({"by": by, "events": ids[start:start + IDS_PER_RECORD]}).encode()
        await broker.publish(body, topic=topics.RECEIPTS, key=by.encode())


def read_receipts(values: Sequence[bytes]) -> dict[str, list[str]]:
    """The event ids confirmed, per reader; a record that is not a receipt is logged and skipped
    (it loses nothing: what it would have confirmed is published again)."""
    confirmed: dict[str, list[str]] = defaultdict(list)
    for value in values:
        try:
            receipt = json.loads(value)
            by, ids = receipt["by"], receipt["events"]
            if not isinstance(by, str) or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise TypeError("by must be text and events a list of ids")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipped a record on %s that is not a receipt: %s", topics.RECEIPTS, exc)
            continue
        confirmed[by].extend(ids)
    return confirmed


def register_receipts(broker: KafkaBroker, service: str, sessions: async_sessionmaker, outbox: Outbox,
                      options: dict) -> None:
    """Subscribe `service` to the receipts for the events in its outbox."""

    @broker.subscriber(topics.RECEIPTS, **{**options, "group_id": topics.receipts_group(service)}, batch=True,
                       max_records=500, description=f"Receipts for the events {service} published.")
    async def on_receipts(msg: KafkaMessage) -> None:
        confirmed = read_receipts([raw.value or b"" for raw in msg.raw_message])
        confirmed.pop(service, None)  # its own receipts are for the others' events
        if confirmed:
            await until_done(lambda: _confirm(sessions, outbox, confirmed), f"{len(confirmed)} receipts")


async def _confirm(sessions: async_sessionmaker, outbox: Outbox, confirmed: dict[str, list[str]]) -> None:
    async with sessions() as session, session.begin():
        for by, ids in confirmed.items():
            await outbox.confirm(session, by, _uuids(ids))


def _uuids(ids: list[str]) -> list[str]:
    """The ids that are UUIDs (a malformed one would fail the whole statement)."""
    valid = []
    for i in ids:
        if CANONICAL_UUID.fullmatch(i):  # as our services write them: already as the database takes them
            valid.append(i)
            continue
        try:
            valid.append(str(UUID(i)))
        except ValueError:
            log.warning("skipped a receipt for %r: not an event id", i[:80])
    return valid
