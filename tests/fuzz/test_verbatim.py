"""SQL- and script-looking text is data: stored as sent, returned as sent, never run.

Each example goes in through intake (a submission, then an escalation) and comes back out of
outcomes (the referral's state, its history, and a search by the same text). The agency's name is
such text too: each example refers with an API key made for an agency of that name.
"""

import uuid

import pytest
from hypothesis import given

from tests.fuzz.conftest import wait_until
from tests.fuzz.payloads import FUZZ, looking_like_attacks, stored_verbatim

TEXT = stored_verbatim(looking_like_attacks(60))
URL_TEXT = TEXT.filter(lambda s: not any(c.isspace() for c in s))


@pytest.fixture(scope="module")
def outcomes(stack):
    with stack.client("outcomes") as client:
        yield client


def test_sql_and_script_looking_text_comes_back_verbatim(stack, outcomes):
    sent: list[tuple[str, dict, str]] = []

    with stack.client("intake") as intake:
        @FUZZ
        @given(agency=TEXT, case_reference=TEXT, notes=TEXT, key=TEXT, query=URL_TEXT, reason=TEXT)
        def refer(agency, case_reference, notes, key, query, reason):
            submission = {"agency": agency, "url": "https://x.com/search?q=" + query, "category": "fraud",
                          "case_reference": case_reference, "notes": notes,
                          "idempotency_key": f"{key} {uuid.uuid4()}"}
            as_agency = stack.agency_key(agency)
            response = intake.post("/v1/referrals", json=submission, headers=as_agency)
            assert response.status_code == 202, response.text
            referral_id = response.json()["referral_id"]
            escalated = intake.post(f"/v1/referrals/{referral_id}/escalate", json={"reason": reason}, headers=as_agency)
            assert escalated.status_code == 202, escalated.text
            sent.append((referral_id, submission, reason))

        refer()

    for referral_id, submission, reason in sent:
        path = f"/v1/referrals/{referral_id}"
        wait_until(lambda: len(outcomes.get(path).json().get("history", [])) >= 2, 60, f"{path}'s escalation")
        state = outcomes.get(path).json()
        submitted, escalated = (next(e["data"] for e in state["history"] if e["event_type"] == kind)
                                for kind in ("referral.submitted", "referral.escalated"))
        assert {k: state[k] for k in ("agency", "url", "case_reference")} == {
            k: submission[k] for k in ("agency", "url", "case_reference")}
        assert {k: submitted[k] for k in submission} == submission
        assert escalated["reason"] == reason
        found = outcomes.get("/v1/referrals", params={"case_reference": submission["case_reference"],
                                                      "agency": submission["agency"]}).json()["items"]
        assert referral_id in {item["referral_id"] for item in found}
