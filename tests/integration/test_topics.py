"""Each service creates the topics it needs, with the configured partition count."""

from aiokafka.admin import AIOKafkaAdminClient

from services.outcomes.app import create_app
from services.outcomes.config import OutcomesSettings
from shared import topics
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
