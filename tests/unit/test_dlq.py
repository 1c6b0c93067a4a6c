"""Dead letters and consumer lag without Kafka: what a replay sends, what list and lag show."""

import json

from typer.testing import CliRunner

from services.cli import app
from services.dlq import DeadLetter, as_json, describe, destination, first_per_topic, is_replayed, replay_headers
from services.ops import PartitionLag, lag_lines, our_groups
from shared import topics


def letter(topic: str = topics.DELIVERY_DLQ, partition: int = 2, offset: int = 7, key: bytes | None = b"ref-1",
           value: bytes = b'{"referral_id": "ref-1"}', **headers: str | bytes) -> DeadLetter:
    defaults = {"ce_id": "e-1", "dlq_reason": "HTTP 503", "dlq_original_topic": "dispatch.facebook",
                "dlq_original_partition": "1", "dlq_original_offset": "41", "dlq_attempts": "6",
                "dlq_failed_at": "2026-03-01T12:00:00+00:00"}
    merged = {**defaults, **headers}
    return DeadLetter(topic, partition, offset, key, value,
                      tuple((k, v if isinstance(v, bytes) else v.encode()) for k, v in merged.items()))


# --- where a replay goes, and with which headers -------------------------------------------------


def test_a_dead_letter_is_replayed_to_the_topic_it_was_read_from():
    assert destination(letter(dlq_original_topic="referrals.inbound")) == "referrals.inbound"


def test_a_report_that_failed_on_a_retry_topic_is_replayed_to_its_platforms_lane():
    assert destination(letter(dlq_original_topic=topics.retry_lane("youtube"))) == topics.lane("youtube")


def test_a_dead_letter_without_an_original_topic_has_nowhere_to_go():
    bare = DeadLetter(topics.OUTCOMES_DLQ, 0, 0, None, b"x", (("dlq_reason", b"bad"),))

    assert destination(bare) is None


def test_a_replay_drops_the_dlq_headers_keeps_the_others_and_says_where_it_came_from():
    headers = dict(replay_headers(letter(topic=topics.DELIVERY_DLQ, partition=2, offset=7)))

    assert headers == {"ce_id": b"e-1", "dlq_replayed_from": b"dispatch.dlq/2/7"}


def test_a_replay_starts_a_fresh_set_of_delivery_attempts():
    headers = dict(replay_headers(letter(**{"x-takedown-attempt": "6", "x-takedown-last-error": "HTTP 503"})))

    assert headers["x-takedown-attempt"] == b"1"
    assert headers["x-takedown-last-error"] == b"HTTP 503"


def test_a_record_that_never_had_an_attempt_count_is_not_given_one():
    assert "x-takedown-attempt" not in dict(replay_headers(letter()))


def test_header_bytes_that_are_not_utf8_are_replayed_untouched():
    headers = dict(replay_headers(letter(agency_ref=b"\xff\xfe")))

    assert headers["agency_ref"] == b"\xff\xfe"


def test_an_earlier_replay_leaves_no_stale_replayed_from_header():
    headers = replay_headers(letter(dlq_replayed_from="dispatch.dlq/0/1"))

    assert [v for k, v in headers if k == "dlq_replayed_from"] == [b"dispatch.dlq/2/7"]


# --- what list shows -----------------------------------------------------------------------------


def test_a_dead_letter_below_the_replay_groups_committed_offset_counts_as_replayed():
    assert is_replayed(letter(partition=2, offset=7), {2: 8})
    assert not is_replayed(letter(partition=2, offset=8), {2: 8})
    assert not is_replayed(letter(partition=2, offset=0), {0: 100})


def test_a_listed_dead_letter_fits_on_one_line_with_its_origin_attempts_and_reason():
    line = describe(letter(dlq_reason="gave up after 6 attempts:\nHTTP 503 " + "x" * 200), replayed=True)

    assert "\n" not in line
    assert line.startswith("dispatch.dlq/2/7  key=ref-1  from=dispatch.facebook/1/41  attempts=6")
    assert "failed_at=2026-03-01T12:00:00+00:00  replayed=yes" in line
    assert "reason=gave up after 6 attempts: HTTP 503 xxx" in line and line.endswith("…")
    assert len(line) < 250


def test_a_dead_letter_that_was_itself_a_replay_says_which_dead_letter_it_replayed():
    line = describe(letter(dlq_replayed_from="dispatch.dlq/0/1"), replayed=False)

    assert "replayed=no  replay_of=dispatch.dlq/0/1  reason=HTTP 503" in line


def test_a_dead_letter_without_key_or_dlq_headers_still_lists():
    bare = DeadLetter(topics.OUTCOMES_DLQ, 0, 3, None, b"x", ())

    assert describe(bare, replayed=False) == ("outcomes.dlq/0/3  key=-  from=?/?/?  attempts=?  failed_at=?"
                                              "  replayed=no  reason=")


def test_json_listing_carries_the_reason_value_and_headers_in_full():
    reason = "not a referral: " + "y" * 3000
    entry = json.loads(json.dumps(as_json(letter(dlq_reason=reason), replayed=False)))

    assert entry["reason"] == reason
    assert entry["value"] == '{"referral_id": "ref-1"}'
    assert entry["original_topic"] == "dispatch.facebook" and entry["original_offset"] == "41"
    assert entry["headers"]["ce_id"] == "e-1" and entry["replayed"] is False


def test_a_limit_applies_to_each_topic_and_says_how_many_were_left_out():
    entries = [(letter(topic=t, offset=o), False) for t in (topics.DELIVERY_DLQ, topics.OUTCOMES_DLQ)
               for o in range(3)]

    shown, left_out = first_per_topic(entries, 2)

    assert [(x.topic, x.offset) for x, _ in shown] == [(topics.DELIVERY_DLQ, 0), (topics.DELIVERY_DLQ, 1),
                                                       (topics.OUTCOMES_DLQ, 0), (topics.OUTCOMES_DLQ, 1)]
    assert left_out == {topics.DELIVERY_DLQ: 1, topics.OUTCOMES_DLQ: 1}
    assert first_per_topic(entries, None) == (entries, {})


# --- the command line, before it touches Kafka -----------------------------------------------------


def test_replay_needs_either_all_or_an_offset_with_its_partition():
    runner = CliRunner()
    for args in ([], ["--all", "--offset", "1", "--partition", "0"], ["--offset", "1"]):
        result = runner.invoke(app, ["dlq", "replay", "--topic", topics.DELIVERY_DLQ, *args])
        assert result.exit_code == 2, (args, result.output)


def test_only_dead_letter_topics_can_be_listed_or_replayed():
    runner = CliRunner()
    for args in (["list", "--topic", topics.REFERRALS_SUBMITTED],
                 ["replay", "--topic", topics.REFERRALS_SUBMITTED, "--all"]):
        result = runner.invoke(app, ["dlq", *args])
        assert result.exit_code == 2 and "not a dead-letter topic" in result.output


# --- consumer lag -------------------------------------------------------------------------------


def test_lag_covers_every_topic_our_services_read_every_lane_and_the_dead_letters():
    groups = our_groups()
    read = {t for ts in groups.values() for t in ts}

    assert set(topics.CONSUMED["outcomes"]) <= read and topics.REFERRALS_INBOUND in read
    assert {topics.lane(p) for p in topics.PLATFORMS} <= read
    assert {topics.retry_lane(p) for p in topics.PLATFORMS} <= read
    assert groups["takedown-dlq-replay"] == topics.DEAD_LETTER_TOPICS


def test_lag_is_what_lies_between_the_committed_offset_and_the_end():
    assert PartitionLag("g", "t", 0, committed=40, start=0, end=52).lag == 12
    assert PartitionLag("g", "t", 0, committed=None, start=10, end=52).lag == 42  # reads from the start
    assert PartitionLag("g", "t", 0, committed=3, start=10, end=52).lag == 42  # older records are gone
    assert PartitionLag("g", "t", 0, committed=52, start=0, end=52).lag == 0


def test_the_lag_table_has_a_row_a_partition_and_a_total_a_group():
    rows = [PartitionLag("takedown-outcomes", "referrals.dispatch", p, 5, 0, 9) for p in range(2)]
    rows.append(PartitionLag("takedown-intake", "referrals.inbound", 0, None, 0, 3))

    lines = lag_lines(rows)

    assert lines[0].split() == ["GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG"]
    assert lines[1].split() == ["takedown-outcomes", "referrals.dispatch", "0", "5", "9", "4"]
    assert lines[3].split() == ["takedown-outcomes", "total", "8"]
    assert lines[4].split() == ["takedown-intake", "referrals.inbound", "0", "-", "3", "3"]
    assert lines[5].split() == ["takedown-intake", "total", "3"]
