"""What intake accepts as a submission, and how it says what is wrong."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.intake.domain import Submission, record_key, to_referral
from services.intake.handlers import parse_submission
from shared.reliability import Poison

VALID = {"agency": "NCA", "url": "https://fb.com/x", "category": "people_smuggling"}
EVIDENCE = {"sha256": "a" * 64, "captured_at": "2026-11-01T10:00:00Z", "archive_url": "https://archive.example/1"}


def errors_by_field(payload: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Submission.model_validate(payload)
    return {".".join(str(p) for p in e["loc"]): e["type"] for e in caught.value.errors()}


def test_a_minimal_submission_is_valid_with_normal_priority():
    submission = Submission.model_validate(VALID)

    assert submission.priority == "normal" and submission.evidence == []


def test_every_optional_field_is_accepted():
    submission = Submission.model_validate({**VALID, "case_reference": "OP-1", "idempotency_key": "k",
                                            "priority": "urgent", "notes": "n", "evidence": [EVIDENCE]})

    assert submission.evidence[0].sha256 == "a" * 64


def test_missing_required_fields_are_each_named():
    assert set(errors_by_field({})) == {"url", "category"}


def test_the_agency_may_be_left_out_since_it_comes_from_the_caller():
    assert Submission.model_validate({"url": "https://fb.com/x", "category": "fraud"}).agency is None


def test_unknown_fields_are_refused_so_typos_are_not_silently_dropped():
    assert errors_by_field({**VALID, "catgory": "fraud"}) == {"catgory": "extra_forbidden"}


@pytest.mark.parametrize("field, value", [
    ("category", "littering"), ("priority", "whenever"), ("agency", ""), ("agency", "x" * 201),
    ("notes", "x" * 10_001), ("url", "ftp://x.org"), ("idempotency_key", ""),
])
def test_bad_values_are_named(field, value):
    assert field in errors_by_field({**VALID, field: value})


def test_bad_evidence_names_the_item_and_field():
    fields = errors_by_field({**VALID, "evidence": [EVIDENCE, {**EVIDENCE, "sha256": "A" * 64}]})

    assert fields == {"evidence.1.sha256": "string_pattern_mismatch"}


def test_the_referral_carries_canonical_url_platform_and_channel():
    referral = to_referral(Submission.model_validate({**VALID, "url": "https://www.fb.com/x/?fbclid=1"}),
                           agency="NCA", now=datetime(2026, 11, 1, tzinfo=UTC), via="kafka")

    assert referral.canonical_url == "https://fb.com/x" and referral.platform == "facebook"
    assert referral.url == "https://www.fb.com/x/?fbclid=1" and referral.received_via == "kafka"


def test_a_kafka_record_without_an_idempotency_key_is_keyed_by_its_bytes():
    raw = b'{"agency": "NCA", "url": "https://fb.com/x", "category": "fraud"}'

    assert parse_submission(raw).idempotency_key == record_key(raw)
    assert record_key(raw) != record_key(raw + b" ")


def test_a_kafka_record_keeps_its_own_idempotency_key():
    raw = b'{"agency": "NCA", "url": "https://fb.com/x", "category": "fraud", "idempotency_key": "mine"}'

    assert parse_submission(raw).idempotency_key == "mine"


@pytest.mark.parametrize("raw, reason", [
    (b"", "not valid JSON"), (b"\x80abc", "not valid JSON"), (b"null", "JSON object"),
    (b"[" * 100_000, "not valid JSON"), (b'{"agency": 1}', "agency"),
])
def test_a_bad_kafka_record_is_poison_with_a_reason(raw, reason):
    with pytest.raises(Poison, match=reason):
        parse_submission(raw)
