"""`takedown dlq`: list dead letters and replay them to where they came from.

A dead letter is the failed record (key, value and headers unchanged) plus dlq_* headers saying
why it failed and where it was read (shared/kafka.py `dead_letter`, the dispatcher's outbound).
A replay sends key and value unchanged back to that topic. The consumer group
`takedown-dlq-replay` records how far each dead-letter topic has been replayed; only
`replay --all` moves it, after each record the broker acknowledged, so running it twice sends
nothing the second time. Reading stops at the end offsets taken when it began.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from services.dispatcher.outbound import ATTEMPT  # a replay starts a fresh set of attempts
from services.ops import BOOTSTRAP, REPLAY_GROUP, bootstrap_servers, read_to_end, topic_layout
from shared.topics import DEAD_LETTER_TOPICS

REPLAYED_FROM = "dlq_replayed_from"
RETRY_SUFFIX = ".retry"  # shared.topics.retry_lane(p) is lane(p) + ".retry"


class ReplayError(Exception):
    """A replay that cannot go on; nothing after the record it names was sent."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record) -> "DeadLetter":
        """From an aiokafka ConsumerRecord."""
        return cls(record.topic, record.partition, record.offset, record.key, record.value or b"",
                   tuple((k, v or b"") for k, v in record.headers or ()))

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return values[-1].decode("utf-8", "replace") if values else None

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def origin(self) -> str:
        return "/".join(self.header(f"dlq_original_{part}") or "?" for part in ("topic", "partition", "offset"))


# --- pure parts ---------------------------------------------------------------------------------


def destination(letter: DeadLetter) -> str | None:
    """Where a replay sends a dead letter: its original topic, except that a record that failed
    while parked on a platform's retry topic goes straight to the platform's lane."""
    original = letter.header("dlq_original_topic")
    return original.removesuffix(RETRY_SUFFIX) if original else None


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The record's own headers (no dlq_* ones), attempts counted afresh, and where it was kept."""
    kept = [(k, b"1" if k == ATTEMPT else v) for k, v in letter.headers if not k.startswith("dlq_")]
    return [*kept, (REPLAYED_FROM, letter.position.encode())]


def is_replayed(letter: DeadLetter, committed: Mapping[int, int]) -> bool:
    """Whether `replay --all` has already sent it (it lies below the group's committed offset)."""
    return letter.offset < committed.get(letter.partition, 0)


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe(letter: DeadLetter, replayed: bool, reason_width: int = 80) -> str:
    """One line for `dlq list`."""
    key = one_line(letter.key.decode("utf-8", "replace"), 40) if letter.key is not None else "-"
    again = f"  replay_of={earlier}" if (earlier := letter.header(REPLAYED_FROM)) else ""
    return (f"{letter.position}  key={key}  from={letter.origin}  attempts={letter.header('dlq_attempts') or '?'}"
            f"  failed_at={letter.header('dlq_failed_at') or '?'}  replayed={'yes' if replayed else 'no'}{again}"
            f"  reason={one_line(letter.header('dlq_reason') or '', reason_width)}")


def as_json(letter: DeadLetter, replayed: bool) -> dict:
    """Everything about a dead letter, reason in full, for `dlq list --json` (one object a line)."""
    text = lambda b: None if b is None else b.decode("utf-8", "replace")  # noqa: E731
    return {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
            "key": text(letter.key), "original_topic": letter.header("dlq_original_topic"),
            "original_partition": letter.header("dlq_original_partition"),
            "original_offset": letter.header("dlq_original_offset"), "attempts": letter.header("dlq_attempts"),
            "failed_at": letter.header("dlq_failed_at"), "reason": letter.header("dlq_reason"),
            "replayed": replayed, "headers": {k: text(v) for k, v in letter.headers}, "value": text(letter.value)}


def first_per_topic(entries: Iterable[tuple[DeadLetter, bool]], limit: int | None
                    ) -> tuple[list[tuple[DeadLetter, bool]], dict[str, int]]:
    """At most `limit` entries of each topic, in the order given; and how many each topic left out."""
    shown, seen, left_out = [], {}, {}
    for letter, replayed in entries:
        seen[letter.topic] = seen.get(letter.topic, 0) + 1
        if limit is None or seen[letter.topic] <= limit:
            shown.append((letter, replayed))
        else:
            left_out[letter.topic] = left_out.get(letter.topic, 0) + 1
    return shown, left_out


# --- Kafka --------------------------------------------------------------------------------------


@asynccontextmanager
async def _consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that only ever assigns partitions itself; the group is for committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=REPLAY_GROUP, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                fetch_max_wait_ms=100)  # an idle fetch holds up the next topic's offset requests
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def _committed(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[int, int]:
    return {tp.partition: offset for tp in tps if (offset := await consumer.committed(tp)) is not None}


async def list_dead_letters(bootstrap: str, topics: Iterable[str] = DEAD_LETTER_TOPICS,
                            timeout: float = 30.0) -> list[tuple[DeadLetter, bool]]:
    """Every dead letter on the topics, by topic, partition and offset, and whether it was replayed."""
    found: list[tuple[DeadLetter, bool]] = []
    async with _consumer(bootstrap) as consumer:
        layout = await topic_layout(consumer)
        for topic in topics:
            tps = layout.get(topic)
            if not tps:
                continue
            committed = await _committed(consumer, tps)
            letters = [DeadLetter.of(r) async for r in read_to_end(consumer, await consumer.beginning_offsets(tps),
                                                                   timeout)]
            found += [(x, is_replayed(x, committed)) for x in sorted(letters, key=lambda x: (x.partition, x.offset))]
    return found


async def replay(bootstrap: str, topic: str, *, offset: int | None = None, partition: int = 0,
                 dry_run: bool = False, timeout: float = 30.0,
                 say: Callable[[str], None] = lambda line: None) -> list[DeadLetter]:
    """Replay every dead letter not yet replayed, or with `offset` just that one; the ones sent
    (with dry_run: that would be). Only a replay of all moves the group's committed offsets."""
    async with _consumer(bootstrap) as consumer:
        layout = await topic_layout(consumer)
        tps, existing = layout.get(topic, []), set(layout)
        committed = await _committed(consumer, tps)
        if offset is None:
            begin = await consumer.beginning_offsets(tps)
            starts = {tp: max(committed.get(tp.partition, 0), begin[tp]) for tp in tps}
        elif TopicPartition(topic, partition) in tps:
            starts = {TopicPartition(topic, partition): offset}
        else:
            raise ReplayError(f"{topic} has no partition {partition}")
        producer = None if dry_run else AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        try:
            if producer:
                await producer.start()
            sent: list[DeadLetter] = []
            async with aclosing(read_to_end(consumer, starts, timeout)) as records:
                async for record in records:
                    letter = DeadLetter.of(record)
                    if offset is not None:
                        if letter.offset != offset:
                            break  # nothing at that offset (deleted, or a gap)
                        if is_replayed(letter, committed):
                            say(f"{letter.position} was already replayed; replaying it again as asked")
                    if await _replay_one(letter, existing, producer, say):
                        sent.append(letter)
                    if offset is not None:
                        return sent
                    if producer:  # after the broker acknowledged it (or it can never be sent)
                        await consumer.commit({TopicPartition(topic, letter.partition): letter.offset + 1})
            if offset is not None:
                raise ReplayError(f"no record at {topic}/{partition}/{offset}")
            return sent
        finally:
            if producer:
                await producer.stop()


async def _replay_one(letter: DeadLetter, existing: set[str], producer: AIOKafkaProducer | None,
                      say: Callable[[str], None]) -> bool:
    """Send one dead letter back (with no producer: say what would be sent); whether it was."""
    target = destination(letter)
    if target is None:
        say(f"skipped {letter.position}: no dlq_original_topic header, nowhere to send it")
        return False
    if target not in existing:
        raise ReplayError(f"{letter.position} goes to {target}, which does not exist (start the "
                          "service that owns it); stopped before it")
    if producer is None:
        say(f"would replay {letter.position} -> {target}")
    else:
        await producer.send_and_wait(target, letter.value, key=letter.key, headers=replay_headers(letter))
        say(f"replayed {letter.position} -> {target}")
    return True


# --- the command --------------------------------------------------------------------------------

dlq_app = typer.Typer(no_args_is_help=True, help="List dead letters, and replay them to where they came from.")
TIMEOUT = typer.Option(30.0, "--timeout", help="Give up after this many seconds without progress.")


def _dead_letter_topic(topic: str) -> str:
    if topic not in DEAD_LETTER_TOPICS:
        raise typer.BadParameter(f"not a dead-letter topic; one of {', '.join(DEAD_LETTER_TOPICS)}")
    return topic


def _run(coroutine):
    """Run the async core; a broker or replay failure is a message and exit code 1, not a traceback."""
    try:
        return asyncio.run(coroutine)
    except (KafkaError, TimeoutError, ReplayError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@dlq_app.command("list")
def list_command(
    topic: str | None = typer.Option(None, "--topic", callback=lambda t: t and _dead_letter_topic(t),
                                     help="One dead-letter topic (default: all of them)."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="At most this many per topic."),
    as_json_lines: bool = typer.Option(False, "--json", help="One JSON object a line, reason and value in full."),
    bootstrap: str | None = BOOTSTRAP, timeout: float = TIMEOUT,
) -> None:
    """Show dead letters: where each came from, attempts, when and why it failed, if replayed."""
    entries = _run(list_dead_letters(bootstrap_servers(bootstrap), [topic] if topic else DEAD_LETTER_TOPICS,
                                     timeout))
    shown, left_out = first_per_topic(entries, limit)
    for letter, replayed in shown:
        typer.echo(json.dumps(as_json(letter, replayed)) if as_json_lines else describe(letter, replayed))
    for name, count in left_out.items():
        typer.echo(f"... {count} more on {name} (raise --limit)", err=True)
    if not entries:
        typer.echo("no dead letters", err=True)


@dlq_app.command("replay")
def replay_command(
    topic: str = typer.Option(..., "--topic", callback=_dead_letter_topic, help="The dead-letter topic."),
    offset: int | None = typer.Option(None, "--offset", min=0, help="Replay just the record at this offset."),
    partition: int | None = typer.Option(None, "--partition", min=0, help="Its partition (with --offset)."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter not replayed yet."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be replayed; send nothing."),
    bootstrap: str | None = BOOTSTRAP, timeout: float = TIMEOUT,
) -> None:
    """Send dead letters back to the topic they came from, key and value unchanged.

    dlq_* headers are removed, dlq_replayed_from is added, x-takedown-attempt is reset to 1.
    """
    if replay_all == (offset is not None) or (offset is None) != (partition is None):
        raise typer.BadParameter("give either --all, or --offset with --partition")
    if offset is not None:
        typer.echo(f"replaying one record by hand: {REPLAY_GROUP}'s offsets stay as they are, "
                   "so a later --all sends it again if it lies beyond them")
    sent = _run(replay(bootstrap_servers(bootstrap), topic, offset=offset, partition=partition or 0,
                       dry_run=dry_run, timeout=timeout, say=typer.echo))
    typer.echo(f"{'would replay' if dry_run else 'replayed'} {len(sent)} dead letter(s) from {topic}")
