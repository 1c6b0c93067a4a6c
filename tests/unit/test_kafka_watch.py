"""Which service rebuilds which topic after the broker lost it."""

from shared import topics
from shared.kafka_watch import rebuilder

SERVICES = ("intake", "dispatcher", "outcomes")


def test_every_topic_a_service_needs_has_one_rebuilder_among_the_services_that_need_it():
    needed = {t for s in SERVICES for t in topics.needed_by(s)}

    assert all(rebuilder(t) in SERVICES and t in topics.needed_by(rebuilder(t)) for t in needed)


def test_a_topic_two_services_own_is_rebuilt_by_one_and_one_only_agencies_write_by_its_reader():
    assert rebuilder(topics.RECEIPTS) == "dispatcher"
    assert rebuilder(topics.REFERRALS_INBOUND) == "intake"
    assert rebuilder("not.a.topic") is None
