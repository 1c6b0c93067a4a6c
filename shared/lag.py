"""How far consumer groups are behind: each group's committed offset against the end of every
partition it reads (`takedown lag`, and intake's backpressure gauge, which reads it every second).

The end of a partition is its high watermark as a fetch reports it, not ListOffsets: Tansu answers
ListOffsets counting a stored batch as one record (100 records published in one batch: end offset
1), so lag from it undercounts by the batch size. A fetch's high watermark is right on Tansu and on
Apache Kafka. The reader's consumer is positioned far past every end: Tansu answers such a fetch
with no records and the high watermark, so nothing is read; Apache Kafka answers OffsetOutOfRange,
the consumer moves to the end (auto_offset_reset=latest) and from there reads only what is
appended, which read() discards, a small fetch at a time.
"""

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka_topics import topic_layout

FAR = 2 ** 62  # a position past the end of any log
REQUEST_TIMEOUT_MS = 5000
Groups = Mapping[str, Sequence[str]]  # consumer group -> the topics it reads


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here
    start: int  # the oldest offset still in the log
    end: int

    @property
    def lag(self) -> int:
        """Records the group has still to read (with no commit it reads from the log's start)."""
        return max(self.end - (self.start if self.committed is None else max(self.committed, self.start)), 0)


class LagReader:
    """Reads the lag of consumer groups; keeps its clients open between reads (use as an async
    context manager, or start() and close())."""

    def __init__(self, bootstrap: str, fetch_wait_ms: int = 200):
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="latest",
            fetch_max_wait_ms=fetch_wait_ms, max_partition_fetch_bytes=64 * 1024,
            request_timeout_ms=REQUEST_TIMEOUT_MS)

    async def __aenter__(self) -> "LagReader":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            await self.admin.start()
            await self.consumer.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()

    async def read(self, groups: Groups, wait_s: float = 0.0) -> list[PartitionLag]:
        """Each group's lag on every partition of the topics it reads (topics not created yet are left
        out). wait_s: how long to wait for a first fetch to report partitions' ends (a reader read
        once); an end not reported by then is taken from ListOffsets."""
        _, layout = await topic_layout(self.admin)  # names no topic: creates none
        wanted = {g: [TopicPartition(t, p) for t in read for p in range(layout.get(t, 0))] for g, read in groups.items()}
        ends = await self._ends(sorted({tp for tps in wanted.values() for tp in tps}), wait_s)
        if not ends:
            return []
        starts = await self.consumer.beginning_offsets(list(ends))
        committed = await asyncio.gather(*(committed_offsets(self.admin, g, tps) for g, tps in wanted.items()))
        return [PartitionLag(group, tp.topic, tp.partition, offsets.get(tp), starts[tp], ends[tp])
                for (group, tps), offsets in zip(wanted.items(), committed, strict=True) for tp in tps]

    async def _ends(self, tps: list[TopicPartition], wait_s: float) -> dict[TopicPartition, int]:
        """The high watermark of each partition, as the consumer's last fetch reported it."""
        if not tps:
            return {}
        if set(tps) != self.consumer.assignment():
            self.consumer.assign(tps)
            for tp in tps:
                self.consumer.seek(tp, FAR)
        deadline = time.monotonic() + wait_s
        while True:
            await self.consumer.getmany(timeout_ms=0)  # what Apache Kafka served past its end: not needed
            ends = {tp: self.consumer.highwater(tp) for tp in tps}
            unknown = [tp for tp, end in ends.items() if end is None]
            if not unknown or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        if unknown:
            ends.update(await self.consumer.end_offsets(unknown))
        return ends  # type: ignore[return-value]


async def committed_offsets(admin: AIOKafkaAdminClient, group: str,
                            tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition that has one."""
    if not tps:
        return {}
    # Partitions named: Tansu cannot answer "all of the group's offsets".
    found = await admin.list_consumer_group_offsets(group, partitions=list(tps))
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
