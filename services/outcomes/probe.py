"""Whether content is reachable: the port stays-down checks use, and its HTTP implementation."""

import logging
from typing import Protocol
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

GONE = frozenset({404, 410, 451})  # not found, gone, unavailable for legal reasons


class ProbeFailed(Exception):
    """The check gave no answer either way (an error, a timeout): try again later."""


class ContentProbe(Protocol):
    async def reachable(self, url: str) -> bool:
        """True if the content is up, False if it is gone; ProbeFailed if that cannot be told."""
        ...

    async def close(self) -> None: ...


def check_url(template: str, url: str) -> str:
    """The URL to GET for url: the template with {url} filled in.

    A template starting with {url} checks the URL itself (as given); anywhere else, e.g. in a
    query string, it is percent-encoded.
    """
    if template.startswith("{url}"):
        return url + template.removeprefix("{url}")
    return template.replace("{url}", quote(url, safe=""))


class HttpContentProbe:
    """GETs the check URL: 2xx is reachable, 404, 410 or 451 gone, anything else a failed check."""

    def __init__(self, template: str, timeout_s: float):
        self.template, self.timeout_s = template, timeout_s
        self._client: httpx.AsyncClient | None = None

    async def reachable(self, url: str) -> bool:
        if self._client is None:  # made on first use: nothing connects before the service starts
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True,
                                             headers={"User-Agent": "takedown-outcomes stays-down check"})
        target = check_url(self.template, url)
        try:
            response = await self._client.get(target)
        except httpx.HTTPError as exc:
            raise ProbeFailed(f"GET {target}: {exc!r}") from exc
        if response.is_success:
            return True
        if response.status_code in GONE:
            return False
        raise ProbeFailed(f"GET {target}: HTTP {response.status_code}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
