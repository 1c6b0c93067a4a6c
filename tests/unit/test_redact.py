"""Redaction (shared/redact.py): credentials by their shape, configured secrets in every form,
headers fit to copy, and log records scrubbed before a handler writes them."""

import base64
import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import quote, quote_plus
from uuid import uuid4

import pytest
from pydantic import BaseModel, SecretStr

from services.dispatcher import domain
from services.dispatcher.adapters.answers import excerpt
from services.dispatcher.outbound import LAST_ERROR, Outbound, Record
from shared.events import Platform
from shared.kafka import dead_letter_record
from shared.redact import (MASK, RedactingFilter, Redactor, configured_secrets, forms, install_log_filter,
                           redact_headers)
from tests.fakes import RecordingBroker

SECRET = "s3cr3t/P@ss+w0rd=="  # every form of it differs: /, @, + and = are all encoded
B64, URLSAFE = base64.b64encode(SECRET.encode()).decode(), base64.urlsafe_b64encode(SECRET.encode()).decode()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([SECRET])


@pytest.mark.parametrize("form", [
    SECRET, quote(SECRET, safe=""), quote(SECRET), quote_plus(SECRET), "s3cr3t%2fP%40ss%2bw0rd%3d%3d",
    B64, B64.rstrip("="), URLSAFE, URLSAFE.rstrip("="), json.dumps(SECRET)[1:-1],
], ids=["plain", "quote", "quote-keeping-slash", "quote_plus", "lower-case-escapes", "base64", "base64-unpadded",
        "urlsafe-base64", "urlsafe-base64-unpadded", "json-escaped"])
def test_a_configured_secret_is_blanked_out_in_each_form_it_may_be_written_in(form, redactor):
    redacted = redactor.redact(f"400 Bad Request: {{\"echo\": \"{form}\"}} refused")

    assert redacted == f"400 Bad Request: {{\"echo\": \"{MASK}\"}} refused"


@pytest.mark.parametrize("before", ["u:", "ab:", "abc:", "user:", "client-id:", "sandbox-meta:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_inside_longer_base64_such_as_basic_auth_leaves_at_most_its_edges(before, encode, redactor):
    encoded = encode(f"{before}{SECRET}".encode()).decode()

    redacted = redactor.redact(f"echo {encoded}")

    assert MASK in redacted
    shown = len(redacted) - len("echo ") - len(MASK)
    # What shows: the characters of the bytes before the secret, and at most one partial one either side.
    assert shown <= -(-len(before) * 4 // 3) + 4


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl next", "Authorization: *** next"),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: ***"),
    ('{"authorization": "Bearer tok-123", "ok": true}', '{"authorization": "***", "ok": true}'),
    ("{'Authorization': 'Bearer tok-123', 'user-agent': 'x'}", "{'Authorization': '***', 'user-agent': 'x'}"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: ***"),
    ("?authorization=Bearer%20tok-123&x=1", "?authorization=***&x=1"),
    ("sent BEARER abc.DEF-123_~+/== to them", "sent BEARER *** to them"),
    ("key td_k7f3a9c2_Xq-9z_Lm0pQ was refused", "key td_k7f3a9c2_*** was refused"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw== in use", "secret whsec_*** in use"),
], ids=["authorization-header-line", "basic", "json-field", "python-dict", "proxy-authorization", "query",
        "bearer-any-case", "api-key-keeps-its-id", "whsec"])
def test_credentials_are_recognised_by_their_shape_and_keep_what_names_them(text, expected):
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize("text", [
    "authorization failed: unknown client", "std_dev_x and pstd_k_v", "no credentials here at all",
    "tdx_a_b", "the Authorization header was missing",
])
def test_text_without_credentials_is_returned_as_it_was(text):
    redactor = Redactor([SECRET])

    assert redactor.redact(text) is text


def test_redacting_twice_changes_nothing_more(redactor):
    once = redactor.redact(f"Authorization: Bearer tok next; {SECRET} and td_k1_abc")

    assert redactor.redact(once) == once == "Authorization: *** next; *** and td_k1_***"


def test_secrets_too_short_to_redact_safely_are_not_registered_and_say_so_once(caplog):
    redactor = Redactor(["", "abc", "abcdef"])
    redactor.register("abc", "abcdef")

    assert redactor.redact("abc abcdef") == f"abc {MASK}"
    assert caplog.text.count("too short") == 1 and "abc" not in caplog.text


def test_every_form_is_at_least_as_long_as_the_shortest_secret_registered():
    assert min(len(f) for f in forms("abcdef")) >= 6 and "abcdef" in forms("abcdef")


class _Nested(BaseModel):
    token: SecretStr = SecretStr("nested-token")
    name: str = "not-a-secret"


class _Settings(BaseModel):
    database_url: str = "postgresql+asyncpg://svc:p%40ss-word@db:5432/takedown"
    api_key: SecretStr = SecretStr("top-level-key")
    nested: _Nested = _Nested()
    by_name: dict = {"x": SecretStr("in-a-dict")}
    listed: list = [SecretStr("in-a-list")]


def test_configured_secrets_are_every_secret_str_nested_or_not_and_the_database_password():
    assert sorted(configured_secrets(_Settings())) == sorted(
        ["p@ss-word", "top-level-key", "nested-token", "in-a-dict", "in-a-list"])


def test_headers_copied_elsewhere_lose_credentials_and_keep_the_rest_scrubbed():
    headers = {"Authorization": "Bearer abc", "cookie": "session=1", "PROXY-AUTHORIZATION": "Basic x",
               "ce_type": "referral.submitted", "x-takedown-last-error": "401 for Bearer tok-9", "raw": b"bytes"}

    assert redact_headers(headers) == {"ce_type": "referral.submitted", "x-takedown-last-error": "401 for Bearer ***"}


def test_an_adapters_excerpt_is_redacted_before_it_is_cut_and_registers_the_adapters_secrets():
    body = "x" * 195 + " excerpt-only-secret"  # cut first, "excerpt-o…" would be left

    cut = excerpt(body, ("excerpt-only-secret",))

    assert "excerpt-" not in cut and cut.endswith(MASK)
    assert excerpt("again excerpt-only-secret") == f"again {MASK}"  # registered for good


@dataclass(frozen=True)
class _Raw:
    """The fields of a consumed aiokafka record a dead letter reads."""

    topic: str = "referrals.inbound"
    partition: int = 0
    offset: int = 7
    key: bytes = b"k"
    value: bytes = b"{}"


ECHO = "HTTP 400 from POST /reports: you sent Authorization: Bearer tok-1"
HEADERS = {"authorization": "Bearer agency-token", "Cookie": "s=1", "ce_type": "referral.submitted",
           LAST_ERROR: "HTTP 401: Bearer tok-0 expired"}


async def test_dead_letters_of_every_service_and_of_the_dispatcher_lose_credentials_in_reason_and_headers():
    broker = RecordingBroker()

    await dead_letter_record(broker, "referrals.inbound.dlq", _Raw(), HEADERS, ECHO, 1)
    await Outbound(broker).dead_letter(Record(key=b"k", value=b"{}", headers=HEADERS, topic="dispatch.x"), ECHO)

    assert len(broker.published) == 2
    for letter in broker.published:
        assert letter.headers["dlq_reason"] == "HTTP 400 from POST /reports: you sent Authorization: ***"
        assert letter.headers[LAST_ERROR] == "HTTP 401: Bearer *** expired"
        assert not {"authorization", "Cookie"} & set(letter.headers) and letter.headers["ce_type"]


async def test_a_retry_and_a_dispatch_failed_event_carry_the_reason_scrubbed():
    broker = RecordingBroker()

    await Outbound(broker).to_retry("x", Record(key=b"k", value=b"{}", headers={}), 0.0, ECHO)
    failed = domain.dispatch_failed(uuid4(), Platform.x, "x", ECHO, 1, permanent=True)

    assert broker.published[0].headers[LAST_ERROR].endswith("Authorization: ***")
    assert failed.data.reason.endswith("Authorization: ***")


def _logger(redactor: Redactor) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.Logger("redaction-test")  # not in the manager: nothing propagates to pytest's handlers
    logger.addHandler(handler)
    return logger, stream


def test_the_log_filter_scrubs_a_rendered_message_and_an_exceptions_traceback(redactor):
    logger, stream = _logger(redactor)

    logger.warning("platform said %s with %r", f"client_secret={quote_plus(SECRET)}", {"authorization": "Bearer t1"})
    try:
        raise RuntimeError(f"token endpoint echoed {SECRET} and Authorization: Bearer t2")
    except RuntimeError:
        logger.exception("delivery failed")

    written = stream.getvalue()
    assert SECRET not in written and quote_plus(SECRET) not in written and "t1" not in written and "t2" not in written
    assert "Traceback (most recent call last)" in written and "RuntimeError: token endpoint echoed ***" in written
    assert "platform said client_secret=*** with {'authorization': '***'}" in written


def test_a_record_whose_format_fails_is_left_to_the_handler_to_report(redactor):
    logger, stream = _logger(redactor)
    logger.warning("two %s %s", "args wanted")  # logging reports the bad call on stderr; nothing raised here

    assert stream.getvalue() == ""


def test_install_puts_one_filter_on_every_handler_however_often_it_is_called():
    logger = logging.Logger("redaction-install-test")
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    logger.addHandler(logging.StreamHandler(io.StringIO()))

    install_log_filter(logger)
    install_log_filter(logger)

    assert [len([f for f in h.filters if isinstance(f, RedactingFilter)]) for h in logger.handlers] == [1, 1]


def test_configure_logging_scrubs_what_any_logger_of_the_process_writes():
    program = ("import logging; from shared.serving import configure_logging; configure_logging(); "
               "logging.getLogger('services.anything').warning('sent Authorization: Bearer abc123 to %s', 'x')")

    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)

    assert "sent Authorization: *** to x" in done.stderr and "abc123" not in done.stderr
