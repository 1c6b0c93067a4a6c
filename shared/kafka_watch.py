"""Put a service's Kafka side right again after the broker lost what it held.

The embedded broker (Tansu, memory storage) comes back from a crash empty: no topics, no
committed offsets, no groups. What that does to this project's clients (aiokafka 0.14 under
FastStream 0.7, measured against Tansu 0.6; docs/faults.md, "Broker loss"):

- A group member notices on its next heartbeat (unknown member), joins again and, with nothing
  committed, starts from the beginning. Until then it fetches at its old positions, and Tansu
  answers a fetch past the end of a log with nothing, not OffsetOutOfRange.
- Tansu creates a topic a metadata request names (4 partitions, no configs). Clients ask again at
  once when they lose the connection, but stop after a few seconds of failures and then keep
  their cached metadata for five minutes (metadata_max_age_ms).
- So when the broker is back more than a second or two after the crash, nothing creates the topics
  again. Producers publish with their cached metadata and Tansu acknowledges records for topics
  and partitions it does not have; consumers read them, but their commits fail
  (UnknownTopicOrPartition) and aiokafka retries those for ever: the handler never returns.
- Creating a topic over such records resets its high watermark and keeps the stored batches:
  they can no longer be fetched, and producing to those partitions fails (UnknownError) until the
  watermark passes them. Deleting the topic removes them, and the groups' offsets for it.

BrokerWatch.look() sees a lost broker from the outside: its cluster id changed (EmbeddedKafka gives
each start an id of its own), a topic the service needs is missing, or a consumer's position is past
the end of its partition. If topics are missing or damaged it stops the service's subscribers,
reads back what Tansu acknowledged for each missing topic and creates it (as ensure_topics does),
publishing those records again; it rebuilds each damaged topic it owns (and, on a new broker, each
with fewer partitions than configured) by deleting it and creating it again with every record that
can still be read; then it refreshes the producer's metadata and starts the subscribers again:
new consumers, which join their groups and start from what the new broker has committed for them,
or from the beginning. A consumer past the end of its log is moved to its beginning.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from shared import topics as names
from shared.kafka import create_topics
from shared.kafka_topics import (damaged_partitions, read_unlisted, rebuild_topic, recreate_topic, republish,
                                 topic_layout)
from shared.reliability import until_done
from shared.settings import BaseServiceSettings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_MS = 5000
FETCH_BYTES = 1024 * 1024  # per partition and fetch, reading back records
FETCH_WAIT_MS = 10
OUTAGE_LOOK_S = 0.25  # between looks while the broker does not answer
IDLE_FETCHES = 5  # fetches that bring nothing before a read back stops
REBUILD_ROUNDS = 3  # a topic written to between its deletion and its creation is damaged again


@dataclass
class Look:
    """What one look at the broker found, and what was done about it."""

    cluster_id: str | None = None
    new_broker: bool = False  # its cluster id is not the one seen before
    missing: list[str] = field(default_factory=list)  # needed topics it does not have
    past_end: list[TopicPartition] = field(default_factory=list)  # consumer positions past the log's end
    created: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # deleted and created again
    republished: int = 0  # records read back before a rebuild and published again after it
    lost: int = 0  # records a rebuilt topic held that could not be read back
    restarted: int = 0  # subscribers stopped and started again

    @property
    def broker_lost(self) -> bool:
        return self.new_broker or bool(self.missing) or bool(self.past_end)


class BrokerWatch:
    """Looks at the broker for one service: the topics it needs, those of them it owns (the only
    ones it deletes and creates again) and its FastStream broker's subscribers and producer."""

    def __init__(self, settings: BaseServiceSettings, topics: Iterable[str], broker: KafkaBroker,
                 owned: Iterable[str] | None = None):
        self.settings, self.broker = settings, broker
        self.topics = tuple(dict.fromkeys(topics))
        self.owned = tuple(dict.fromkeys(self.topics if owned is None else owned))
        self.cluster_id: str | None = None  # the broker's, as last seen
        self.stopped: list = []  # subscribers this watch stopped and has not started again
        self.partitions: dict[str, int] = {}  # each needed topic's partition count, as last seen
        self.rewrite: dict[str, list] = {}  # records read back, to publish again (kept if a recovery fails)
        self._admin: AIOKafkaAdminClient | None = None
        self._uneven: set[tuple[str | None, str]] = set()  # (cluster, topic) whose partitions were reported

    async def look(self) -> Look:
        """Look once; if the broker lost what it held, put it right. Raises KafkaError if the broker
        does not answer (the next look tries again)."""
        await self._start_stopped()
        admin = await self._admin_client()
        try:
            cluster_id, layout = await topic_layout(admin)
        except KafkaError:
            await self._drop_admin()
            raise
        look = Look(cluster_id=cluster_id, new_broker=self.cluster_id not in (None, cluster_id),
                    missing=[t for t in self.topics if t not in layout])
        past_end = [] if look.new_broker or look.missing else await self._past_end()
        look.past_end = [tp for _, tp in past_end]
        if look.broker_lost:
            log.warning("the broker lost what it held (%s): putting it right", "; ".join(
                ([f"new cluster id {cluster_id}"] if look.new_broker else [])
                + ([f"missing topics {look.missing}"] if look.missing else [])
                + ([f"consumers past the end of {look.past_end}"] if look.past_end else [])))
            layout = await self._recover(admin, look)
            if past_end and not look.restarted:
                await rewind(past_end)
            log.warning("broker put right: created %s, rebuilt %s (%s records published again, %s lost), "
                        "%s subscribers started again", look.created, look.rebuilt, look.republished, look.lost,
                        look.restarted)
        self._report_uneven(cluster_id, layout)
        self.partitions.update({t: layout[t] for t in self.topics if t in layout})
        self.cluster_id = cluster_id  # only once put right: a failed recovery is tried again
        return look

    async def close(self) -> None:
        await self._drop_admin()

    async def _recover(self, admin: AIOKafkaAdminClient, look: Look) -> dict[str, int]:
        """Create what is missing, rebuild what is damaged; if either, with the subscribers stopped.
        Their groups need no more: a member of a group the broker no longer knows joins again by
        itself and, with nothing committed, starts from the beginning."""
        bootstrap = self.settings.kafka_bootstrap_servers
        _, layout = await topic_layout(admin)
        short = {t for t in self.owned if look.new_broker and t in layout and layout[t] < self.settings.topic_partitions}
        damaged = await damaged_partitions(bootstrap, {t: layout[t] for t in self.owned if t in layout})
        if not (look.missing or damaged or short or self.rewrite):
            await refresh_producer_metadata(self.broker)
            return layout
        # Stopped first: a consumer retrying a commit on a missing topic would commit as soon as it is
        # created, and one reading a topic about to be rebuilt could commit positions on the new one.
        running = [s for s in self.broker.subscribers if getattr(s, "running", False)]
        await asyncio.gather(*(s.stop() for s in running))
        self.stopped.extend(running)
        shutting_down = False
        try:
            # What Tansu acknowledged for a missing topic is read back first (creating the topic hides
            # it), and the topic created at once: after that, what is published to it is served.
            # Whoever creates a topic publishes those records again.
            rewrite = self.rewrite
            for topic in look.missing:
                unlisted = await read_unlisted(bootstrap, topic, max(self.partitions.get(topic, 0),
                                                                     self.settings.topic_partitions))
                if not await create_topics(admin, self.settings, [topic]):
                    continue  # another instance created it, and publishes what it read
                look.created.append(topic)
                if unlisted:  # their batches are in the new topic, hidden: delete them with it, at once
                    await recreate_topic(admin, self.settings, topic)
                    rewrite[topic] = unlisted
            mine = [t for t in self.topics if t in look.created or t in self.owned]  # may rebuild these
            _, layout = await topic_layout(admin)
            damaged = await damaged_partitions(bootstrap, {t: layout[t] for t in mine if t in layout})
            for _ in range(REBUILD_ROUNDS):
                todo = [t for t in mine if t in damaged or t in short]
                if not todo:
                    break
                for topic in todo:
                    republished, lost = await rebuild_topic(admin, self.settings, topic, layout[topic],
                                                            damaged.get(topic, set()), rewrite.pop(topic, []))
                    look.rebuilt.append(topic)
                    look.republished += republished
                    look.lost += lost
                _, layout = await topic_layout(admin)
                short = set()
                damaged = await damaged_partitions(bootstrap, {t: layout[t] for t in todo if t in layout})
            for topic in list(rewrite):  # not rebuilt: published to partitions it does not have
                look.republished += await republish(self.settings, topic, rewrite[topic])
                del rewrite[topic]
            await refresh_producer_metadata(self.broker)
            return layout
        except asyncio.CancelledError:
            shutting_down = True  # the service stops: broker.stop() stops whatever is left
            raise
        finally:
            look.restarted = len(self.stopped)
            if not shutting_down:
                await self._start_stopped()

    async def _start_stopped(self) -> None:
        """Start the subscribers this watch stopped; raise the first failure (the rest are started)."""
        results = await asyncio.gather(*(s.start() for s in self.stopped), return_exceptions=True)
        failed = [(s, r) for s, r in zip(self.stopped, results, strict=True) if isinstance(r, BaseException)]
        self.stopped = [s for s, _ in failed]
        if failed:
            raise failed[0][1]

    async def _past_end(self) -> list[tuple[AIOKafkaConsumer, TopicPartition]]:
        """Assigned partitions whose consumer's position is past the end of the log, as its last fetch
        saw it (the high watermark; Tansu's ListOffsets counts a batch as one record). A consumer's
        position only moves over records fetched below such a mark: past it, the log was lost."""
        found = []
        for consumer in subscriber_consumers(self.broker):
            for tp in consumer.assignment():
                with contextlib.suppress(KafkaError):  # not assigned any more
                    highwater = consumer.highwater(tp)
                    if highwater is None:
                        continue  # nothing fetched yet
                    with contextlib.suppress(TimeoutError):  # no position yet
                        if await asyncio.wait_for(consumer.position(tp), 1) > highwater:
                            found.append((consumer, tp))
        return found

    def _report_uneven(self, cluster_id: str | None, layout: dict[str, int]) -> None:
        for topic in self.topics:
            if topic in layout and layout[topic] != self.settings.topic_partitions \
                    and (cluster_id, topic) not in self._uneven:
                self._uneven.add((cluster_id, topic))
                log.warning("topic %s has %s partitions, not the %s configured: the broker created it when a client "
                            "named it", topic, layout[topic], self.settings.topic_partitions)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                        request_timeout_ms=REQUEST_TIMEOUT_MS)
            await admin.start()
            self._admin = admin
        return self._admin

    async def _drop_admin(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            with contextlib.suppress(Exception):
                await admin.close()


async def watch_broker(settings: BaseServiceSettings, topics: Iterable[str], broker: KafkaBroker,
                       every_s: float | None = None, owned: Iterable[str] | None = None,
                       on_lost: Callable[[], Awaitable[None]] | None = None) -> None:
    """Look at the broker every every_s (KAFKA_WATCH_S) until cancelled, putting right what it lost.

    topics: every topic the service needs (topics.needed_by); owned: those it may delete and create
    again when Tansu has damaged them (by default all of topics); on_lost: called once the broker was
    put right after it lost what it held (a service makes what it had published due again).
    Start it after start_broker.
    """
    watch = BrokerWatch(settings, topics, broker, owned)
    every_s = every_s or settings.kafka_watch_s
    failures = 0
    try:
        while True:
            try:
                look = await watch.look()
                if look.broker_lost and on_lost is not None:
                    await until_done(on_lost, "making due what the broker lost")  # the service publishes it again
                if failures:
                    log.info("the broker answers again after %s failed looks", failures)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the watch must outlive any one look
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "could not look at the broker (%s in a row): %r", failures, exc)
            # While it does not answer, look more often: the sooner it is seen back, the fewer records
            # are published to topics it does not have.
            await asyncio.sleep(min(every_s, OUTAGE_LOOK_S) if failures else every_s)
    finally:
        await watch.close()


async def watch_service(settings: BaseServiceSettings, service: str, broker: KafkaBroker,
                        on_lost: Callable[[], Awaitable[None]] | None = None) -> None:
    """watch_broker for one of the services (intake, dispatcher, outcomes), until cancelled: the
    topics it needs, rebuilding those it is the rebuilder of (rebuilder). A composition root starts
    it as a task right after start_broker and cancels it before broker.stop():

        watch = asyncio.create_task(watch_service(settings, "intake", broker), name="broker-watch")
    """
    needed = names.needed_by(service)
    await watch_broker(settings, needed, broker, owned=[t for t in needed if rebuilder(t) == service],
                       on_lost=on_lost)


def rebuilder(topic: str) -> str | None:
    """The one service that rebuilds a topic Tansu damaged: the first that owns it (the receipts
    topic has two owners), else the first that reads it (referrals.inbound, which agencies write)."""
    for table in (names.OWNED, names.CONSUMED):
        for service, listed in table.items():
            if topic in listed:
                return service
    return None


async def rewind(positions: Iterable[tuple[AIOKafkaConsumer, TopicPartition]]) -> None:
    """Move consumers to the beginning of partitions their position is past the end of, as
    auto_offset_reset=earliest would on Apache Kafka, which answers such a fetch OffsetOutOfRange;
    Tansu answers it with nothing, until the log grows past the position: the records before it
    would be skipped."""
    by_consumer: dict[AIOKafkaConsumer, list[TopicPartition]] = {}
    for consumer, tp in positions:
        by_consumer.setdefault(consumer, []).append(tp)
    for consumer, tps in by_consumer.items():
        assigned = [tp for tp in tps if tp in consumer.assignment()]
        if not assigned:
            continue  # reassigned meanwhile: the new owner starts from what is committed
        try:
            await asyncio.wait_for(consumer.seek_to_beginning(*assigned), REQUEST_TIMEOUT_MS / 1000)
        except (KafkaError, TimeoutError):
            log.warning("could not move consumer positions past the end of %s", assigned, exc_info=True)
        else:
            log.warning("consumer positions past the end of %s moved to the beginning", assigned)


async def refresh_producer_metadata(broker: KafkaBroker, timeout_s: float = 5) -> None:
    """Make the FastStream broker's producer ask for metadata now, not in five minutes: with
    partitions it still believes in, it publishes records Tansu acknowledges and never serves.

    Reaches into FastStream's producer (pinned): broker.config.producer wraps the aiokafka one."""
    try:
        client = broker.config.producer._producer.producer.client
    except AttributeError:
        log.warning("this FastStream keeps its producer elsewhere: its metadata is refreshed in 5 minutes")
        return
    with contextlib.suppress(KafkaError, TimeoutError):
        await asyncio.wait_for(client.force_metadata_update(), timeout_s)


def subscriber_consumers(broker: KafkaBroker) -> list[AIOKafkaConsumer]:
    """The aiokafka consumers of the broker's started subscribers."""
    consumers = []
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "consumer_subgroup", None) or [getattr(subscriber, "consumer", None)]
        consumers += [c for c in group if c is not None]
    return consumers
