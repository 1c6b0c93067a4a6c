"""schemathesis against each service's own OpenAPI document, the service served for real.

Each case is sent as an identity its route lets in (tests/fuzz/conftest.py, caller_of): the
Authorization header schemathesis makes up from the bearer scheme is replaced, or every case would
stop at a 401 and the routes behind the guard would never be fuzzed.
"""

import copy

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,
                                 response_schema_conformance)

from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.config import DispatcherSettings
from services.intake.app import create_app as create_intake
from services.intake.config import IntakeSettings
from services.outcomes.app import create_app as create_outcomes
from services.outcomes.config import OutcomesSettings
from services.sandbox.app import create_app as create_sandbox
from services.sandbox.config import SandboxSettings
from tests.fuzz.payloads import EXAMPLES

# No 5xx, and whatever a documented answer says of itself holds. Not checked: answers the routes do
# not list (404, 409, 413, 503 are deliberate), and pydantic's lax coercions ("1" for 1).
CHECKS = [not_a_server_error, content_type_conformance, response_headers_conformance, response_schema_conformance]
FUZZ = settings(max_examples=max(EXAMPLES * 5 // 6, 1), derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# The documents come from the apps as built, nothing connected; the first test checks that each is
# the one its service serves at /openapi.json.
DOCUMENTS = {"intake": create_intake(IntakeSettings()).openapi(),
             "dispatcher": create_dispatcher(DispatcherSettings()).openapi(),
             "outcomes": create_outcomes(OutcomesSettings()).openapi(),
             "sandbox": create_sandbox(SandboxSettings()).openapi()}
intake, dispatcher, outcomes, sandbox = (schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENTS[name]))
                                         for name in ("intake", "dispatcher", "outcomes", "sandbox"))


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_the_fuzzed_document_is_the_one_the_service_serves(stack, service):
    with stack.client(service) as client:
        assert client.get("/openapi.json").json() == DOCUMENTS[service]


@intake.parametrize()
@FUZZ
def test_intake_answers_whatever_its_document_allows_without_a_server_error(case, stack):
    case.call_and_validate(base_url=stack.urls["intake"], checks=CHECKS, headers=stack.signed_in("intake", case.path))


@dispatcher.parametrize()
@FUZZ
def test_the_dispatcher_answers_whatever_its_document_allows_without_a_server_error(case, stack):
    case.call_and_validate(base_url=stack.urls["dispatcher"], checks=CHECKS, headers=stack.signed_in("dispatcher", case.path))


@outcomes.parametrize()
@FUZZ
def test_outcomes_answers_whatever_its_document_allows_without_a_server_error(case, stack):
    case.call_and_validate(base_url=stack.urls["outcomes"], checks=CHECKS, headers=stack.signed_in("outcomes", case.path))


@sandbox.parametrize()
@FUZZ
def test_the_sandbox_answers_whatever_its_document_allows_without_a_server_error(case, stack):
    case.call_and_validate(base_url=stack.urls["sandbox"], checks=CHECKS, headers=stack.signed_in("sandbox", case.path))
