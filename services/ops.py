"""Operators' Kafka tools: where the broker is, reading a topic to its end, and `takedown lag` (how
far each of our consumer groups is behind, partition by partition)."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared import topics
from shared.lag import LagReader, PartitionLag
from shared.settings import BaseServiceSettings

REPLAY_GROUP = "takedown-dlq-replay"  # how far `takedown dlq replay --all` got (services/dlq.py)
BOOTSTRAP = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS).")


def bootstrap_servers(given: str | None) -> str:
    return given or BaseServiceSettings().kafka_bootstrap_servers


async def topic_layout(consumer: AIOKafkaConsumer) -> dict[str, list[TopicPartition]]:
    """Every topic's partitions, read before anything is assigned: once partitions are assigned, the
    client keeps metadata of those topics only. Asking never auto-creates a topic."""
    layout = {t: consumer.partitions_for_topic(t) for t in await consumer.topics()}
    return {t: [TopicPartition(t, p) for p in sorted(ps)] for t, ps in layout.items() if ps}


async def read_to_end(consumer: AIOKafkaConsumer, starts: Mapping[TopicPartition, int],
                      timeout: float) -> AsyncIterator:
    """Records from each start offset up to the end offsets taken now, then stop. Fails when no
    progress is made for `timeout` seconds (an unreachable broker, say)."""
    ends = await consumer.end_offsets(list(starts))
    todo = {tp for tp, start in starts.items() if start < ends[tp]}
    consumer.assign(sorted(todo))
    for tp in todo:
        consumer.seek(tp, starts[tp])
    deadline = time.monotonic() + timeout
    while todo:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no progress reading {sorted(todo)} for {timeout}s")
        batch = await consumer.getmany(*todo, timeout_ms=200)
        for tp, records in sorted(batch.items()):
            deadline = time.monotonic() + timeout
            for record in records:
                if record.offset < ends[tp]:
                    yield record
        todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}


def our_groups() -> dict[str, tuple[str, ...]]:
    """Each consumer group of ours and the topics it reads."""
    groups = {topics.GROUP_INTAKE: _without_receipts(topics.CONSUMED["intake"]),
              topics.GROUP_DISPATCHER: _without_receipts(topics.CONSUMED["dispatcher"]),
              topics.GROUP_OUTCOMES: topics.CONSUMED["outcomes"]}
    for service in ("intake", "dispatcher"):
        groups[topics.receipts_group(service)] = (topics.RECEIPTS,)
    for platform in topics.PLATFORMS:
        groups[topics.lane_group(platform)] = (topics.lane(platform),)
        groups[topics.retry_group(platform)] = (topics.retry_lane(platform),)
    groups[REPLAY_GROUP] = topics.DEAD_LETTER_TOPICS  # its lag: dead letters not replayed yet
    return groups


def _without_receipts(read: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in read if t != topics.RECEIPTS)  # read in a group of their own


def lag_lines(rows: list[PartitionLag]) -> list[str]:
    """A table, one row a partition and a total a group."""
    lines = [f"{'GROUP':34} {'TOPIC':26} {'PART':>4} {'COMMITTED':>10} {'END':>10} {'LAG':>8}"]
    for group in dict.fromkeys(r.group for r in rows):
        mine = [r for r in rows if r.group == group]
        lines += [f"{r.group:34} {r.topic:26} {r.partition:>4} {'-' if r.committed is None else r.committed:>10}"
                  f" {r.end:>10} {r.lag:>8}" for r in mine]
        lines.append(f"{group:34} {'total':26} {'':>4} {'':>10} {'':>10} {sum(r.lag for r in mine):>8}")
    return lines


async def measure_lag(bootstrap: str, groups: dict[str, tuple[str, ...]] | None = None) -> list[PartitionLag]:
    """Committed against end offsets for every partition each group reads (topics not created yet
    are left out)."""
    async with LagReader(bootstrap, fetch_wait_ms=50) as reader:
        return await reader.read(groups or our_groups(), wait_s=5)


def lag(
    group: str | None = typer.Option(None, "--group", help="Only groups whose name starts with this."),
    behind: bool = typer.Option(False, "--behind", help="Only partitions with records still to read."),
    as_json_lines: bool = typer.Option(False, "--json", help="One JSON object a partition."),
    bootstrap: str | None = BOOTSTRAP,
) -> None:
    """Show each consumer group's committed offset against the end of every partition it reads."""
    groups = {g: t for g, t in our_groups().items() if group is None or g.startswith(group)}
    try:
        rows = asyncio.run(measure_lag(bootstrap_servers(bootstrap), groups))
    except KafkaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    rows = [r for r in rows if r.lag or not behind]
    for line in ([json.dumps({**asdict(r), "lag": r.lag}) for r in rows] if as_json_lines else lag_lines(rows)):
        typer.echo(line)
