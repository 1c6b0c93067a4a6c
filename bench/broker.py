"""The broker's raw limit: records/s produced into embedded Tansu and consumed back, for records of
the size of a referral.submitted record, with our clients' settings.

The producer is configured as shared/kafka.py's make_broker configures ours (acks=all, linger 2 ms,
no idempotence, aiokafka's defaults otherwise) and sends without waiting for each ack; a consumer
(manual commits, as ours) reads them back at once from the start of the topic, committing after
each fetch. The rate is records / (first send to last record consumed). The consumer runs in a
process of its own (python -m bench.broker), so each client has a core's worth of Python: one
process doing both was bound by its own CPU, not by the broker's.
"""

import asyncio
import json
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.records import size, submitted_record

POOL = 1000  # distinct records, sent round and round: the same size without holding every one


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _produce(producer: AIOKafkaProducer, topic: str, count: int, records: list) -> None:
    sent = []
    for n in range(count):
        key, value, headers = records[n % len(records)]
        sent.append(await producer.send(topic, value, key=key, headers=headers))
    await asyncio.gather(*sent)


async def consume(bootstrap: str, topic: str, count: int, timeout: float) -> dict:
    """Read count records of topic from its start, committing after each fetch; say "ready" on
    stdout once the group is joined, then how many were read and when the last came."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}.reader",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=3000, heartbeat_interval_ms=500)
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        got, last_at, deadline = 0, None, time.monotonic() + timeout
        while got < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            if batches:
                got += sum(len(records) for records in batches.values())
                last_at = time.time()
                await consumer.commit()
    finally:
        await consumer.stop()
    return {"consumed": got, "last_at": last_at}


async def _reader(bootstrap: str, topic: str, count: int, timeout: float) -> asyncio.subprocess.Process:
    """The consumer's process, once it has joined its group."""
    reader = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.broker", bootstrap, topic, str(count),
                                                  str(timeout), stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(reader.stdout.readline(), 60)
    if line.strip() != b"ready":
        reader.kill()
        raise RuntimeError(f"the broker benchmark's consumer did not start: {line!r}")
    return reader


async def raw_rate(bootstrap: str, partitions: int, count: int, timeout: float = 300) -> dict:
    """Produce count records and consume them back; records/s and the window it took."""
    topic = f"bench.limit.{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions)
    records = [submitted_record(n) for n in range(min(POOL, count))]
    reader = await _reader(bootstrap, topic, count, timeout)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, enable_idempotence=False)
    try:
        await producer.start()
        began = time.time()
        await _produce(producer, topic, count, records)
        out, _ = await reader.communicate()
    finally:
        await producer.stop()
        if reader.returncode is None:
            reader.kill()
            await reader.wait()
    read = json.loads(out.decode().strip().splitlines()[-1])
    seconds = (read["last_at"] or time.time()) - began
    return {"records": count, "consumed": read["consumed"], "record_bytes": size(submitted_record(0)),
            "partitions": partitions, "seconds": round(seconds, 2), "records_per_s": round(read["consumed"] / seconds),
            "window_at": (began, began + seconds)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(consume(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))))
