"""Signed records on referrals.inbound, verified without Kafka or a database: who signed, and
every reason a record proves nothing."""

import json

import pytest
from standardwebhooks import Webhook

from services.intake.inbound import appended_at, check
from shared.auth import Role
from shared.auth.records import AGENCY, ID, SIGNATURE, TIMESTAMP, claimed_agency, signed_headers, verify
from shared.auth.signing import new_secret
from shared.reliability import Poison

NOW = 1_780_000_000.0
CURRENT, PREVIOUS, OTHER = new_secret(), new_secret(), new_secret()
SECRETS = {"NCA": [CURRENT, PREVIOUS], "Europol": [OTHER]}
VALUE = json.dumps({"url": "https://x.com/a", "category": "fraud"}).encode()


def signed(value: bytes = VALUE, agency: str = "NCA", secret: str = CURRENT, at: float = NOW, **replace) -> dict:
    return {**signed_headers(agency, secret, value, msg_id="msg_1", now=at), **replace}


def refusal(value: bytes, headers: dict, appended: float = NOW) -> str:
    with pytest.raises(Poison) as refused:
        check(value, headers, SECRETS, appended)
    return str(refused.value)


def test_a_record_signed_with_its_agencys_secret_proves_the_agency():
    proof = verify(VALUE, signed(), SECRETS, NOW)

    assert (proof.agency, proof.msg_id, proof.signed_at.timestamp()) == ("NCA", "msg_1", NOW)
    principal = proof.principal
    assert principal.actor == "agency:NCA" and principal.credential == "signed:NCA"
    assert principal.roles == {Role.agency} and principal.agency == "NCA"


def test_while_a_secret_rotates_a_record_signed_with_the_previous_one_is_accepted():
    assert verify(VALUE, signed(secret=PREVIOUS), SECRETS, NOW).agency == "NCA"


def test_one_matching_signature_among_several_is_enough():
    headers = signed()
    wrong = signed(secret=OTHER)[SIGNATURE]

    assert verify(VALUE, {**headers, SIGNATURE: f"{wrong} {headers[SIGNATURE]}"}, SECRETS, NOW).agency == "NCA"


def test_the_headers_verify_with_the_standard_webhooks_library_itself():
    headers = signed_headers("NCA", CURRENT, VALUE)  # now: the library checks against its own clock

    assert Webhook(CURRENT).verify(VALUE, headers) == json.loads(VALUE)
    assert headers[AGENCY] == "NCA" and headers[ID].startswith("msg_")


def test_an_unsigned_record_is_refused_naming_the_missing_signature():
    assert refusal(VALUE, {}) == "unauthenticated: no webhook-signature header"


@pytest.mark.parametrize("header", [ID, TIMESTAMP, SIGNATURE, AGENCY])
def test_a_record_missing_any_one_header_is_refused_naming_it(header):
    headers = signed()
    del headers[header]

    assert refusal(VALUE, headers) == f"unauthenticated: no {header} header"


def test_a_record_signed_with_a_secret_that_is_not_its_agencys_is_refused():
    assert refusal(VALUE, signed(secret=OTHER)).startswith(
        "unauthenticated: signature matches no active secret of agency 'NCA'")


def test_a_record_whose_value_was_changed_after_signing_is_refused():
    tampered = VALUE.replace(b"fraud", b"terrorism")

    assert "signature matches no active secret" in refusal(tampered, signed())


def test_a_record_naming_another_agency_than_the_one_whose_secret_signed_it_is_refused():
    assert "signature matches no active secret of agency 'Europol'" in refusal(VALUE, signed(**{AGENCY: "Europol"}))


def test_a_record_from_an_agency_without_an_active_secret_is_refused():
    assert refusal(VALUE, signed(agency="Interpol")) == (
        "unauthenticated: unknown agency 'Interpol': it has no active signing secret")


def test_a_record_signed_more_than_five_minutes_before_the_broker_appended_it_is_stale():
    assert refusal(VALUE, signed(at=NOW - 301), appended=NOW).startswith("unauthenticated: stale timestamp")
    assert verify(VALUE, signed(at=NOW - 300), SECRETS, NOW).agency == "NCA"


def test_a_record_signed_more_than_five_minutes_after_the_broker_appended_it_is_refused():
    assert refusal(VALUE, signed(at=NOW + 301), appended=NOW).startswith(
        "unauthenticated: timestamp in the future")


def test_the_time_checked_is_when_the_broker_appended_the_record_not_when_it_is_read():
    """A backlog read a day later is accepted: verify has no clock of its own."""
    assert verify(VALUE, signed(at=NOW - 86_400), SECRETS, appended_at=NOW - 86_400 + 2).agency == "NCA"


def test_a_record_without_a_kafka_timestamp_is_checked_against_the_time_it_is_read():
    assert appended_at(None, NOW) == NOW and appended_at(-1, NOW) == NOW
    assert appended_at(1_700_000_000_123, NOW) == 1_700_000_000.123


@pytest.mark.parametrize("stamp", ["1780000000.5", "-1", "soon", "1" * 13])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(stamp):
    assert refusal(VALUE, signed(**{TIMESTAMP: stamp})) == "unauthenticated: webhook-timestamp is not unix seconds"


def test_an_overlong_webhook_id_is_refused():
    long_id = "m" * 201

    assert refusal(VALUE, signed_headers("NCA", CURRENT, VALUE, msg_id=long_id, now=NOW)).startswith(
        "unauthenticated: webhook-id longer than 200")


def test_a_signed_submission_naming_another_agency_in_its_body_is_forbidden():
    value = json.dumps({"agency": "Europol", "url": "https://x.com/a", "category": "fraud"}).encode()

    assert refusal(value, signed(value)).startswith("forbidden: agency 'Europol' is not the caller's agency")


def test_a_signed_submission_naming_its_own_agency_or_none_is_accepted():
    own = json.dumps({"agency": "NCA", "url": "https://x.com/a", "category": "fraud"}).encode()

    for value in (own, VALUE):
        inbound = check(value, signed(value), SECRETS, NOW)
        assert inbound.signed.agency == "NCA" and inbound.submission.url == "https://x.com/a"


def test_an_unsigned_record_is_refused_for_its_signature_before_its_body_is_read():
    assert refusal(b"{not json", {}).startswith("unauthenticated:")
    assert refusal(b"{not json", signed(b"{not json")).startswith("not valid JSON")


def test_a_timestamp_beyond_any_date_is_refused_as_from_the_future_not_an_error():
    assert refusal(VALUE, signed(**{TIMESTAMP: "999999999999"})).startswith("unauthenticated: timestamp in the future")


def test_a_record_signed_before_the_replay_window_is_stale_whatever_its_kafka_timestamp_says():
    old = NOW - 2 * 86_400  # a copy republished by someone whose producer sets the record's time too
    with pytest.raises(Poison, match="before the replay window"):
        check(VALUE, signed(at=old), SECRETS, appended_at=old, oldest=NOW - 86_400)


@pytest.mark.parametrize("agency", ["NC\x00A", "\x00"])
def test_an_agency_header_with_a_nul_character_is_not_looked_up(agency):
    assert claimed_agency({AGENCY: agency}) is None
    assert refusal(VALUE, signed(**{AGENCY: agency})).startswith("unauthenticated: unknown agency")
