"""Each service creates the topics it needs, with the configured partition count."""

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.outcomes.app import create_app
from services.outcomes.config import OutcomesSettings
from shared import topics
from shared.kafka import ensure_topics
from shared.settings import BaseServiceSettings
from tests.support import serving


async def partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(await admin.list_topics())
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def test_a_consumer_started_before_the_producers_creates_what_it_reads_with_the_set_partitions(settings_env, kafka):
    async with serving(create_app(OutcomesSettings(**settings_env))):
        counts = await partition_counts(kafka)

    expected = set(topics.needed_by("outcomes"))
    assert expected <= set(counts)
    assert {counts[t] for t in expected} == {settings_env["topic_partitions"]}


def test_every_topic_read_is_owned_by_some_service_or_by_agencies():
    owned = {t for ts in topics.OWNED.values() for t in ts}
    read = {t for ts in topics.CONSUMED.values() for t in ts}

    assert read - owned == {topics.REFERRALS_INBOUND}


async def test_referrals_inbound_is_created_to_take_its_timestamps_from_the_broker(kafka):
    """Signed records are checked against their Kafka timestamp: it must be the broker's, not the producer's."""
    await ensure_topics(BaseServiceSettings(kafka_bootstrap_servers=kafka), topics.needed_by("intake"))

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.REFERRALS_INBOUND)])
    finally:
        await admin.close()
    [resource] = described.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    assert configs["message.timestamp.type"] == "LogAppendTime"
