"""Standard Webhooks signing and verification (shared/webhooks.py), as both directions of the
generic webhook use it, and the sandbox's memory of the webhook-ids it took."""

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook

from services.sandbox.state import SeenMessages
from shared import webhooks

CURRENT = "whsec_" + base64.b64encode(b"the-current-secret-32-bytes-long").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"the-previous-secret-rotated-out!").decode()
UNKNOWN = "whsec_" + base64.b64encode(b"a-secret-nobody-holds-any-longer").decode()
BODY = b'{"platform":"other","ticket_id":"W1"}'
NOW = 1_800_000_000


def signed(*secrets: str, at: int = NOW, message_id: str = "msg_1", body: bytes = BODY) -> dict[str, str]:
    return webhooks.sign(list(secrets), body, message_id, at)


def test_a_message_signed_with_the_secret_within_the_tolerance_verifies():
    verified = webhooks.verify([CURRENT], signed(CURRENT, at=NOW - 299), BODY, now=NOW)
    assert (verified.message_id, verified.timestamp) == ("msg_1", NOW - 299)
    assert verified.fresh_until() == NOW - 299 + webhooks.TOLERANCE_S


def test_the_signature_is_the_standards_base64_hmac_of_id_timestamp_and_body():
    headers = signed(CURRENT)
    key = base64.b64decode(CURRENT.removeprefix("whsec_"))
    mac = hmac.new(key, b"msg_1.%d." % NOW + BODY, hashlib.sha256).digest()
    assert headers == {"webhook-id": "msg_1", "webhook-timestamp": str(NOW),
                       "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    Webhook(CURRENT).verify(BODY, signed(CURRENT, at=int(time.time())))  # the reference library agrees


def test_a_stale_message_is_refused_as_stale():
    with pytest.raises(webhooks.Refused, match="stale: signed 301 s ago"):
        webhooks.verify([CURRENT], signed(CURRENT, at=NOW - 301), BODY, now=NOW)


def test_a_message_dated_beyond_the_tolerance_in_the_future_is_refused():
    with pytest.raises(webhooks.Refused, match="301 s in the future"):
        webhooks.verify([CURRENT], signed(CURRENT, at=NOW + 301), BODY, now=NOW)


def test_a_timestamp_beyond_any_date_is_refused_not_an_error():
    headers = {**signed(CURRENT), "webhook-timestamp": "999999999999"}
    with pytest.raises(webhooks.Refused, match="in the future"):
        webhooks.verify([CURRENT], headers, BODY, now=NOW)


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_a_message_not_signed_as_it_arrives_is_refused_as_a_wrong_signature(tamper):
    headers, body = signed(UNKNOWN if tamper == "secret" else CURRENT), BODY
    if tamper == "body":
        body = BODY.replace(b"W1", b"W2")
    elif tamper in ("id", "timestamp"):
        headers[f"webhook-{tamper}"] = {"id": "msg_2", "timestamp": str(NOW - 1)}[tamper]
    with pytest.raises(webhooks.Refused, match="^wrong signature$"):
        webhooks.verify([CURRENT], headers, body, now=NOW)


def test_during_a_rotation_a_message_signed_with_the_previous_secret_verifies():
    assert webhooks.verify([CURRENT, PREVIOUS], signed(PREVIOUS), BODY, now=NOW).message_id == "msg_1"


def test_a_message_signed_with_an_old_secret_no_longer_configured_is_refused():
    with pytest.raises(webhooks.Refused, match="wrong signature"):
        webhooks.verify([CURRENT, PREVIOUS], signed(UNKNOWN), BODY, now=NOW)


def test_a_message_signed_with_both_secrets_verifies_with_either():
    headers = signed(CURRENT, PREVIOUS)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secrets in ([CURRENT], [PREVIOUS]):
        webhooks.verify(secrets, headers, BODY, now=NOW)


@pytest.mark.parametrize("header, value, reason", [
    ("webhook-signature", None, "missing"), ("webhook-id", "", "missing"), ("webhook-timestamp", None, "missing"),
    ("webhook-id", "msg 1", "malformed webhook-id"), ("webhook-id", "m" * 201, "malformed webhook-id"),
    ("webhook-timestamp", "1e9", "malformed webhook-timestamp"),
    ("webhook-timestamp", "9" * 400, "malformed webhook-timestamp")])
def test_missing_or_malformed_headers_are_refused_naming_them(header, value, reason):
    headers = signed(CURRENT)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(webhooks.Refused, match=reason):
        webhooks.verify([CURRENT], headers, BODY, now=NOW)


def test_header_names_are_read_whatever_their_case():
    headers = {name.title(): value for name, value in signed(CURRENT).items()}
    assert webhooks.verify([CURRENT], headers, BODY, now=NOW).message_id == "msg_1"


def test_every_message_gets_an_id_of_its_own():
    assert len({webhooks.new_message_id() for _ in range(100)}) == 100


@pytest.mark.parametrize("secret, reason", [("sandbox-webhook-secret", "starts with 'whsec_'"),
                                            ("whsec_not base64!", "base64"),
                                            ("whsec_" + base64.b64encode(b"short").decode(), "at least 16 bytes")])
def test_a_secret_that_is_not_a_whsec_secret_is_refused_without_being_repeated(secret, reason):
    with pytest.raises(ValueError, match=reason) as refused:
        webhooks.check_secret(secret)
    assert secret.removeprefix("whsec_") not in str(refused.value)
    assert webhooks.check_secret(CURRENT) == CURRENT


# -- the sandbox's memory of the ids it took ---------------------------------------------------------

def test_the_sandbox_knows_an_id_it_took_until_a_replay_of_it_would_be_stale_anyway():
    now = [NOW]
    seen = SeenMessages(clock=lambda: now[0])
    seen.remember("msg_1", until=NOW + 300)
    assert seen.seen("msg_1") and not seen.seen("msg_2")
    now[0] = NOW + 301
    seen.remember("msg_2", until=NOW + 601)
    assert not seen.seen("msg_1") and seen.seen("msg_2")
    assert list(seen.until) == ["msg_2"], "the expired ids are forgotten"
