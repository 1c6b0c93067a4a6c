"""The guarded fetcher against real local servers: what it refuses, where it connects, how much and how long it reads.

Names are resolved by a fake resolver (a dict), so a test can make any name point anywhere
without DNS; the servers are real, on 127.0.0.1, reachable only through the allow-list.
"""

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from shared.fetch import FetchFailed, FetchSettings, GuardedFetcher, Refused
from tests.support import serving

pytestmark = pytest.mark.asyncio

KIB = 1024


class Content:
    """A content host that records every request it hears (its Host header and path)."""

    def __init__(self):
        self.heard: list[tuple[str, str]] = []
        self.app = FastAPI(title="content host")
        self.app.middleware("http")(self._record)
        self.app.add_api_route("/page", lambda: Response(b"<p>still up</p>"))
        self.app.add_api_route("/gone", lambda: Response(status_code=410))
        self.app.add_api_route("/redirect", lambda to: RedirectResponse(to, status_code=302))
        self.app.add_api_route("/hops/{left}", self._hops)
        self.app.add_api_route("/bytes/{size}", self._bytes)
        self.app.add_api_route("/drip", lambda: StreamingResponse(self._drip()))

    async def _record(self, request: Request, call_next):
        self.heard.append((request.headers["host"], request.url.path))
        return await call_next(request)

    @staticmethod
    async def _hops(left: int) -> Response:
        return RedirectResponse(f"/hops/{left - 1}", status_code=307) if left else Response(b"arrived")

    @staticmethod
    async def _bytes(size: int) -> Response:
        return Response(b"x" * size)

    @staticmethod
    async def _drip():
        for _ in range(100):  # a byte every 0.1 s: ten seconds in all, each read well within any read timeout
            yield b"x"
            await asyncio.sleep(0.1)


def resolving(names: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return names[host]

    return resolve


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def fetcher(*allow: str, names: dict[str, list[str]] | None = None, **settings) -> GuardedFetcher:
    return GuardedFetcher(FetchSettings.allowing(allow, **settings), resolver=resolving(names or {}))


@pytest.fixture
async def content():
    host = Content()
    async with serving(host.app) as base:
        host.base = base
        yield host


async def test_an_allow_listed_loopback_server_is_reached_and_answers(content):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base)}")

    fetched = await guarded.get(f"{content.base}/page")
    gone = await guarded.get(f"{content.base}/gone")
    await guarded.close()

    assert (fetched.status, fetched.body, fetched.truncated) == (200, b"<p>still up</p>", False)
    assert gone.status == 410


async def test_a_loopback_server_not_on_the_allow_list_is_refused_and_never_hears_of_it(content):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base) + 1}")  # another port is not this one

    with pytest.raises(Refused, match="127.0.0.1 is not a public address: 127.0.0.1 is loopback"):
        await guarded.get(f"{content.base}/page")
    assert content.heard == []


@pytest.mark.parametrize("addresses", [["10.0.0.7"], ["169.254.169.254"], ["93.184.215.14", "127.0.0.1"]],
                         ids=["private", "metadata", "one public, one loopback"])
async def test_a_name_that_resolves_to_any_address_that_is_not_public_is_refused(content, addresses):
    guarded = fetcher(names={"content.example": addresses})

    with pytest.raises(Refused, match="content.example is not a public address: it resolves to"):
        await guarded.get(f"http://content.example:{port_of(content.base)}/page")
    assert content.heard == []


async def test_the_fetcher_connects_to_the_address_it_checked_and_names_the_host_in_host(content):
    port = port_of(content.base)
    guarded = fetcher(f"content.example:{port}", names={"content.example": ["127.0.0.1"]})

    fetched = await guarded.get(f"http://content.example:{port}/page")
    await guarded.close()

    assert fetched.status == 200 and fetched.url == f"http://content.example:{port}/page"
    assert content.heard == [(f"content.example:{port}", "/page")]


@pytest.mark.parametrize("target", ["http://10.0.0.1/", "http://127.0.0.1:1/", "http://[::1]/",
                                    "http://private.example/", "http://metadata.google.internal/", "file:///etc/passwd"])
async def test_a_redirect_to_a_host_that_is_not_public_is_refused(content, target):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base)}", names={"private.example": ["192.168.1.1"]})

    with pytest.raises(Refused):
        await guarded.get(f"{content.base}/redirect?to={target}")
    assert [path for _, path in content.heard] == ["/redirect"]


async def test_three_redirects_are_followed_and_a_fourth_is_refused(content):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base)}")

    arrived = await guarded.get(f"{content.base}/hops/3")
    with pytest.raises(Refused, match="more than 3 redirects"):
        await guarded.get(f"{content.base}/hops/4")
    await guarded.close()

    assert (arrived.status, arrived.body, arrived.url) == (200, b"arrived", f"{content.base}/hops/0")


async def test_a_body_is_read_up_to_64_kib_and_a_larger_one_is_cut_there(content):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base)}")

    whole = await guarded.get(f"{content.base}/bytes/{64 * KIB}")
    cut = await guarded.get(f"{content.base}/bytes/{10 * 1024 * KIB}")
    await guarded.close()

    assert (len(whole.body), whole.truncated) == (64 * KIB, False)
    assert (len(cut.body), cut.truncated) == (64 * KIB, True)


async def test_a_drip_fed_body_is_cut_off_by_the_one_deadline_for_the_whole_fetch(content):
    guarded = fetcher(f"127.0.0.1:{port_of(content.base)}", deadline_s=0.5)

    with pytest.raises(FetchFailed, match="no complete answer within 0.5 s"):
        await guarded.get(f"{content.base}/drip")
    await guarded.close()


async def test_a_server_that_does_not_answer_is_a_failed_fetch_not_a_refusal():
    guarded = fetcher("127.0.0.1:1", deadline_s=2)

    with pytest.raises(FetchFailed):
        await guarded.get("http://127.0.0.1:1/page")


async def test_https_goes_to_the_checked_address_and_verifies_the_certificate_against_the_name(content, tmp_path):
    trusted = certificate("content.example", tmp_path)
    async with serving(content.app, ssl_certfile=tmp_path / "cert.pem", ssl_keyfile=tmp_path / "key.pem") as base:
        port = port_of(base)
        names = {"content.example": ["127.0.0.1"], "impostor.example": ["127.0.0.1"]}
        guarded = GuardedFetcher(FetchSettings.allowing([f"content.example:{port}", f"impostor.example:{port}"]),
                                 resolver=resolving(names), verify=trusted)
        fetched = await guarded.get(f"https://content.example:{port}/page")
        with pytest.raises(FetchFailed, match="certificate"):  # same address, a name the certificate is not for
            await guarded.get(f"https://impostor.example:{port}/page")
        await guarded.close()

    assert fetched.status == 200
    assert content.heard == [(f"content.example:{port}", "/page")]


def certificate(name: str, directory: Path) -> ssl.SSLContext:
    """A self-signed certificate for name in directory (cert.pem, key.pem); a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return ssl.create_default_context(cafile=directory / "cert.pem")


async def test_only_the_allow_listed_host_a_fetch_starts_at_is_exempt_not_one_a_redirect_points_to(content):
    other = Content()
    async with serving(other.app) as other_base:
        guarded = fetcher(f"127.0.0.1:{port_of(content.base)}", f"127.0.0.1:{port_of(other_base)}")
        with pytest.raises(Refused):  # a page cannot bounce the check onto another internal service
            await guarded.get(f"{content.base}/redirect?to={other_base}/page")
        await guarded.close()
    assert other.heard == []
