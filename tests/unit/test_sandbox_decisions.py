"""What the sandbox's platforms say and sign: decision objects, information requests, signatures,
and how a ticket moves when its fate is applied."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.sandbox.callbacks import decide
from services.sandbox.domain import (OUTCOMES, VERDICTS, decision_object, hex_signature, information_request,
                                     iso, timestamped_signature)
from services.sandbox.state import Ticket
from shared.events import Platform

AT = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
VISIBILITY = {"content_removed", "content_disabled", "content_demoted", "content_age_restricted",
              "content_interaction_restricted", "content_labelled"}
NO_ACTION = {"no_violation", "insufficient_information", "content_not_found", "already_removed", "out_of_scope",
             "duplicate"}


def test_times_are_written_in_utc_to_the_microsecond_with_a_z_so_none_seems_to_precede_its_cause():
    assert iso(AT) == "2026-11-22T10:00:00.123456Z"
    assert iso(datetime(2026, 11, 22, 11, 30, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-22T10:30:00.000000Z"


def test_every_deciding_outcome_has_a_decision_in_the_contract_vocabulary():
    assert set(VERDICTS) == set(OUTCOMES) - {"information_request", "none"}
    for outcome in VERDICTS:
        decision = decision_object(outcome, AT)
        assert set(decision) == {"visibility", "account", "ground", "territorial_scope", "no_action_reason",
                                 "explanation", "decided_at"}
        assert set(decision["visibility"]) <= VISIBILITY
        assert decision["account"] in {None, "account_suspended", "account_terminated"}
        assert decision["ground"] in {None, "illegal_content", "incompatible_with_terms"}
        assert decision["no_action_reason"] in NO_ACTION | {None}
        assert decision["territorial_scope"] == ["GB"]
        assert decision["explanation"].strip()
        assert decision["decided_at"] == "2026-11-22T10:00:00.123456Z"
        acted = bool(decision["visibility"] or decision["account"])
        assert acted != (decision["no_action_reason"] is not None), outcome


@pytest.mark.parametrize(("outcome", "expected"), [
    ("removed", {"visibility": ["content_removed"], "account": None, "ground": "illegal_content",
                 "no_action_reason": None}),
    ("restricted", {"visibility": ["content_age_restricted"], "account": None, "ground": "incompatible_with_terms",
                    "no_action_reason": None}),
    ("account_suspended", {"visibility": [], "account": "account_suspended", "ground": "incompatible_with_terms",
                           "no_action_reason": None}),
    ("rejected", {"visibility": [], "account": None, "ground": None, "no_action_reason": "no_violation"}),
    ("insufficient_information", {"visibility": [], "account": None, "ground": None,
                                  "no_action_reason": "insufficient_information"}),
    ("content_not_found", {"visibility": [], "account": None, "ground": None,
                           "no_action_reason": "content_not_found"}),
])
def test_each_outcome_decides_as_its_name_says(outcome, expected):
    decision = decision_object(outcome, AT)
    assert {k: decision[k] for k in expected} == expected


def test_a_rejection_explains_that_the_content_is_not_breaching_terms():
    assert "not breaching our terms" in decision_object("rejected", AT)["explanation"]


@pytest.mark.parametrize("outcome", ["none", "information_request", "banned"])
def test_outcomes_that_do_not_decide_have_no_decision_object(outcome):
    with pytest.raises(ValueError, match="not a decision"):
        decision_object(outcome, AT)


def test_an_information_request_asks_a_question_and_says_when():
    asked = information_request(AT)
    assert set(asked) == {"question", "requested_at"}
    assert asked["question"].strip()
    assert asked["requested_at"] == "2026-11-22T10:00:00.123456Z"


def test_the_hex_signature_is_the_hmac_sha256_of_the_raw_body():
    body = b'{"ticket_id":"other-1"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert hex_signature("secret", body) == f"sha256={expected}"


def test_the_timestamped_signature_is_base64_over_timestamp_dot_body():
    body = b'{"report_id":"x-1"}'
    mac = hmac.new(b"consumer", b"1795000000." + body, hashlib.sha256).digest()
    assert timestamped_signature("consumer", "1795000000", body) == "sha256=" + base64.b64encode(mac).decode()
    assert timestamped_signature("consumer", "1795000001", body) != timestamped_signature("consumer", "1795000000",
                                                                                          body)


def ticket() -> Ticket:
    return Ticket(ticket_id="x-1", dialect="x", platform=Platform.x, reference="r", url="https://x.com/1",
                  received_at=AT)


def test_a_deciding_fate_closes_the_ticket_with_its_decision():
    t = ticket()
    decide(t, "rejected", AT)
    assert (t.status, t.outcome, t.reason) == ("decided", "rejected", "no_violation")
    assert t.decision == decision_object("rejected", AT)
    assert t.decided_at == AT


def test_an_information_request_keeps_the_ticket_open_until_it_is_decided():
    t = ticket()
    decide(t, "information_request", AT)
    assert (t.status, t.decision, t.decided_at) == ("information_requested", None, None)
    assert t.information_request == information_request(AT)
    decide(t, "removed", AT + timedelta(seconds=1))
    assert (t.status, t.outcome) == ("decided", "removed")


def test_a_platform_that_never_answers_leaves_the_ticket_open():
    t = ticket()
    decide(t, "none", AT)
    assert (t.status, t.outcome, t.decision, t.information_request) == ("open", "none", None, None)
