"""The one way a service fetches a URL that came from outside: public addresses only, bounded in every way.

A URL in a referral is chosen by whoever refers it, so fetching it naively lets them make us
request http://169.254.169.254/ (cloud credentials) or http://127.0.0.1:5432/ for them:
server-side request forgery. GuardedFetcher resolves the host itself, refuses it unless every
address is public (shared/netpolicy.py), connects to the address it checked (not to whatever a
second lookup returns: DNS rebinding), follows redirects itself and checks each hop the same
way, reads at most max_bytes and gives up at one deadline for the whole fetch, so a server that
drip-feeds its answer cannot hold a check for ever. Only http and https.

Hand-written because httpx has no such guard, and the libraries that have one (advocate, for
instance) wrap requests' synchronous adapters, not httpx's async client.

An explicit allow-list of host:port entries (the sandbox in development and tests) may be
reached although not public when the URL asked for is on it, and then only that host:port: a
public page cannot bounce the fetch onto an allow-listed internal service by a redirect.
"""

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from shared import netpolicy

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PORTS = {"http": 80, "https": 443}


class Refused(Exception):
    """The fetch may not be made: not http(s), a host that is not public, too many redirects."""


class FetchFailed(Exception):
    """The fetch was allowed but gave no answer: a network error, or its deadline passed."""


@dataclass(frozen=True)
class FetchSettings:
    """How far a fetch may go: where, how much, how long, how many redirects."""

    allow: frozenset[tuple[str, int]] = frozenset()  # (host, port) reachable although not public
    max_bytes: int = 64 * 1024
    deadline_s: float = 10.0
    max_redirects: int = 3
    user_agent: str = "takedown"

    @classmethod
    def allowing(cls, entries: Iterable[str], **settings) -> "FetchSettings":
        """Settings with host:port entries ("127.0.0.1:8090") on the allow-list."""
        return cls(allow=frozenset(netpolicy.allow_entry(e) for e in entries), **settings)


@dataclass(frozen=True)
class Fetched:
    """The answer to a fetch, after any redirects."""

    url: str  # the URL that answered
    status: int
    headers: httpx.Headers
    body: bytes  # at most max_bytes, as sent: never decompressed, so a compression bomb stays small
    truncated: bool  # the body went on past max_bytes and was not read further


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address host resolves to, by the system's resolver, without blocking the loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedFetcher:
    """GETs URLs from outside under the rules above; resolver and TLS verification are injectable for tests."""

    def __init__(self, settings: FetchSettings, resolver: Resolver = system_resolver,
                 verify: ssl.SSLContext | bool = True):
        self.settings, self.resolver, self.verify = settings, resolver, verify
        self._http: httpx.AsyncClient | None = None

    async def get(self, url: str) -> Fetched:
        """GET url, following up to max_redirects redirects, each checked, all within one deadline."""
        try:
            async with asyncio.timeout(self.settings.deadline_s):
                return await self._follow(url)
        except TimeoutError as exc:
            raise FetchFailed(f"GET {url}: no complete answer within {self.settings.deadline_s:g} s") from exc
        except (netpolicy.NotPublic, httpx.InvalidURL) as exc:
            raise Refused(f"GET {url}: {exc}") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise FetchFailed(f"GET {url}: {exc!r}") from exc

    async def _follow(self, url: str) -> Fetched:
        hop = httpx.URL(url)
        origin = self._exempt(hop)
        for _ in range(self.settings.max_redirects + 1):
            fetched = await self._hop(hop, origin)
            location = fetched.headers.get("location")
            if fetched.status not in REDIRECTS or not location:
                return fetched
            hop = hop.join(location)
            log.debug("GET %s: redirected to %s", url, hop)
        raise Refused(f"GET {url}: more than {self.settings.max_redirects} redirects")

    def _exempt(self, url: httpx.URL) -> tuple[str, int] | None:
        """The allow-listed host:port the fetch starts at, if it does: only it is exempt on later hops."""
        if url.scheme not in PORTS:
            return None
        where = (netpolicy.normalise(url.raw_host.decode("ascii")), url.port or PORTS[url.scheme])
        return where if where in self.settings.allow else None

    async def _hop(self, url: httpx.URL, exempt: tuple[str, int] | None) -> Fetched:
        addresses = await self._addresses(url, exempt)
        for address in addresses[:-1]:  # a name with several addresses: the next may answer
            try:
                return await self._request(url, address)
            except httpx.ConnectError as exc:
                log.debug("GET %s: cannot connect to %s, trying the next address: %r", url, address, exc)
        return await self._request(url, addresses[-1])

    async def _addresses(self, url: httpx.URL, exempt: tuple[str, int] | None) -> list[str]:
        """The addresses url's host may be reached at; raise NotPublic if any is not public (but
        for the exempt host:port, the allow-listed one the fetch started at)."""
        if url.scheme not in PORTS:
            raise Refused(f"GET {url}: only http and https URLs are fetched")
        host, port = netpolicy.normalise(url.raw_host.decode("ascii")), url.port or PORTS[url.scheme]
        allowed = exempt is not None and (host, port) == exempt
        if not allowed:
            netpolicy.check_host(host)
        literal = netpolicy.parse_address(host)
        addresses = [str(literal)] if literal is not None else await self.resolver(host, port)
        if not addresses:
            raise FetchFailed(f"GET {url}: {host} resolves to no address")
        if not allowed:  # every address, not only the first: the next lookup may prefer another
            for address in addresses:
                netpolicy.check_address(host, address)
        return addresses

    async def _request(self, url: httpx.URL, address: str) -> Fetched:
        # Connect to the address just checked; the name goes in Host, and in TLS's SNI so the
        # certificate is verified against the name, not the address.
        headers = {"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        pinned = url.copy_with(host=address)
        async with self._client().stream("GET", pinned, headers=headers, extensions=extensions) as response:
            body, truncated = await self._read(response)
        return Fetched(str(url), response.status_code, response.headers, body, truncated)

    async def _read(self, response: httpx.Response) -> tuple[bytes, bool]:
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self.settings.max_bytes:  # stop reading: the rest stays on the wire
                return bytes(body[:self.settings.max_bytes]), True
        return bytes(body), False

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:  # made on first use: nothing is set up before the service starts
            self._http = httpx.AsyncClient(
                follow_redirects=False,  # each hop is checked by _follow
                # No proxy from the environment: the address checked must be the one connected to.
                trust_env=False, verify=self.verify, timeout=self.settings.deadline_s,
                headers={"User-Agent": self.settings.user_agent},
                # No connection is reused: one opened to an address for one name (its SNI and
                # certificate) must not carry a request for another name at the same address.
                limits=httpx.Limits(max_keepalive_connections=0))
        return self._http

    async def close(self) -> None:
        """Close the connection pool; the fetcher may be used again afterwards."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
