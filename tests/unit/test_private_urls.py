"""Intake refuses URLs whose host is not public, however it is spelled, so nothing fetches them later."""

import pytest
from pydantic import ValidationError

from services.intake.domain import Submission, canonicalise
from services.intake.handlers import parse_submission
from shared.reliability import Poison

VALID = {"agency": "NCA", "url": "https://fb.com/x", "category": "people_smuggling"}

REFUSED = {
    "loopback": "http://127.0.0.1/",
    "loopback with a port (Postgres)": "http://127.0.0.1:5432/",
    "loopback elsewhere in 127/8": "http://127.9.9.9/admin",
    "loopback as a decimal number": "http://2130706433/",
    "loopback in hex": "http://0x7f000001/",
    "loopback in dotted hex": "http://0x7f.0x0.0x0.0x1/",
    "loopback in octal": "http://0177.0.0.1/",
    "loopback, short form": "http://127.1/",
    "loopback with the root's trailing dot": "http://127.0.0.1./",
    "cloud metadata (link-local)": "http://169.254.169.254/latest/meta-data/",
    "link-local as a decimal number": "http://2852039166/",
    "private 10/8": "http://10.0.0.1/",
    "private 172.16/12": "https://172.16.5.4/",
    "private 192.168/16": "http://192.168.1.1/",
    "carrier-grade NAT 100.64/10": "http://100.64.0.1/",
    "multicast": "http://224.0.0.1/",
    "unspecified": "http://0.0.0.0:8003/",
    "zero, short form": "http://0/",
    "reserved 240/4": "http://240.0.0.1/",
    "broadcast": "http://255.255.255.255/",
    "IPv6 loopback": "http://[::1]/",
    "IPv6 unspecified": "http://[::]/",
    "IPv6 unique local": "http://[fd00::1]/",
    "IPv6 link-local": "http://[fe80::1]/",
    "IPv6 link-local with a zone": "http://[fe80::1%25eth0]/",
    "IPv6 multicast": "http://[ff02::1]/",
    "IPv4-mapped loopback": "http://[::ffff:127.0.0.1]/",
    "IPv4-mapped metadata": "http://[::ffff:a9fe:a9fe]/",
    "IPv4-compatible loopback": "http://[::127.0.0.1]/",
    "6to4 of loopback": "http://[2002:7f00:1::]/",
    "NAT64 of a private address": "http://[64:ff9b::a00:1]/",
    "Teredo": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "localhost": "http://localhost/",
    "localhost in upper case with a port": "http://LOCALHOST:8001/",
    "localhost with the root's trailing dot": "http://localhost./",
    "a name under .localhost": "http://admin.localhost/",
    "a name under .local": "http://printer.local/",
    "a name under .internal": "http://metadata.google.internal/computeMetadata/v1/",
    "a Kubernetes service": "http://postgres.default.svc/",
    "a Kubernetes service, fully qualified": "http://postgres.default.svc.cluster.local:5432/",
    "upper case internal name": "http://Kafka.Internal/",
    "a single label (the resolver's search list)": "http://sandbox:8090/",
    "a percent-encoded host": "http://127.0.0.%31/",
    "credentials before a loopback host": "http://facebook.com@127.0.0.1/",
    "no scheme, loopback": "127.0.0.1/x",
}


def url_error(url: str) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        Submission.model_validate({**VALID, "url": url})
    [error] = caught.value.errors()
    return error["loc"], error["msg"]


@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
def test_a_url_whose_host_is_not_public_is_refused_naming_the_url_field(url):
    field, message = url_error(url)

    assert field == ("url",)
    assert "is not a public address" in message


def test_the_refusal_says_which_host_and_why():
    assert url_error("http://2130706433/")[1].endswith(
        "URL host 2130706433 is not a public address: 127.0.0.1 is loopback")
    assert url_error("http://printer.local/")[1].endswith(
        "URL host printer.local is not a public address: it is an internal name")


def test_a_record_on_referrals_inbound_with_such_a_url_is_poison_with_the_reason():
    raw = b'{"agency": "NCA", "url": "http://[::ffff:169.254.169.254]/", "category": "fraud"}'

    with pytest.raises(Poison, match=r"url: .*URL host ::ffff:169.254.169.254 is not a public address"):
        parse_submission(raw)


ACCEPTED = {
    "a platform": ("https://www.facebook.com/groups/1", "https://facebook.com/groups/1"),
    "any other public name": ("https://example.org/page", "https://example.org/page"),
    "a name that merely contains local": ("https://localnews.example/a", "https://localnews.example/a"),
    "a public IPv4 address": ("http://8.8.8.8/x", "http://8.8.8.8/x"),
    "a public IPv4 address as a number": ("http://134744072/x", "http://8.8.8.8/x"),
    "a public IPv4 address, short form": ("http://8.8.2056/x", "http://8.8.8.8/x"),
    "a public IPv6 address": ("https://[2001:4860:4860::8888]:8443/a", "https://[2001:4860:4860::8888]:8443/a"),
    "a public address mapped into IPv6": ("https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/"),
}


@pytest.mark.parametrize("url, canonical", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_url_whose_host_may_be_public_is_accepted_and_each_address_has_one_canonical_spelling(url, canonical):
    assert Submission.model_validate({**VALID, "url": url}).url == url
    assert canonicalise(url) == canonical
