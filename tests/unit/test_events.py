"""Lifecycle events as CloudEvents 1.0 in Kafka binary mode."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shared.events import (Event, InvalidEvent, Outcome, Platform, ReferralDispatched, TakedownDecided,
                           actor, from_kafka, to_kafka)


def decided_event() -> Event:
    data = TakedownDecided(referral_id=uuid4(), platform=Platform.youtube, ticket_id="yt-1",
                           outcome=Outcome.rejected, reason="no_violation")
    return Event(source="/takedown/dispatcher", actor=actor("platform", "youtube"),
                 time=datetime(2026, 11, 2, 9, 30, tzinfo=UTC), data=data)


def test_an_event_survives_the_trip_through_kafka_headers_and_body():
    event = decided_event()

    key, value, headers = to_kafka(event)

    assert key == str(event.referral_id).encode()
    assert from_kafka(headers, value) == event


def test_the_binary_mode_headers_carry_every_required_attribute():
    event = decided_event()

    _, _, headers = to_kafka(event)

    assert headers == {
        "ce_specversion": "1.0", "ce_id": str(event.id), "ce_source": "/takedown/dispatcher",
        "ce_type": "takedown.decided", "ce_time": "2026-11-02T09:30:00+00:00",
        "ce_subject": str(event.referral_id), "ce_schemaversion": "1", "ce_actor": "platform:youtube",
        "content-type": "application/json",
    }


def test_every_event_gets_its_own_id():
    data = ReferralDispatched(referral_id=uuid4(), platform=Platform.x, adapter="x", ticket_id="1")

    assert Event(source="s", actor="a", data=data).id != Event(source="s", actor="a", data=data).id


@pytest.mark.parametrize("change, message", [
    ({"ce_specversion": "0.3"}, "ce_specversion"),
    ({"ce_type": "referral.vanished"}, "unknown ce_type"),
    ({"ce_id": "not-a-uuid"}, "id"),
    ({"ce_time": "yesterday"}, "time"),
])
def test_a_record_with_bad_attributes_is_refused_naming_the_problem(change, message):
    _, value, headers = to_kafka(decided_event())

    with pytest.raises(InvalidEvent, match=message):
        from_kafka({**headers, **change}, value)


def test_a_body_that_breaks_the_schema_is_refused_naming_the_field():
    _, _, headers = to_kafka(decided_event())

    with pytest.raises(InvalidEvent, match="outcome"):
        from_kafka(headers, b'{"referral_id": "%s", "platform": "youtube", "ticket_id": "1", "outcome": "shrugged"}'
                   % str(uuid4()).encode())


def test_a_record_without_headers_is_refused():
    with pytest.raises(InvalidEvent):
        from_kafka({}, b"{}")
