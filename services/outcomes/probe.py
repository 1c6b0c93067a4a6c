"""Whether content is reachable: the port stays-down checks use, and its HTTP implementation."""

import logging
from typing import Protocol
from urllib.parse import quote

from shared.fetch import FetchFailed, GuardedFetcher, Refused

log = logging.getLogger(__name__)

GONE = frozenset({404, 410, 451})  # not found, gone, unavailable for legal reasons


class ProbeFailed(Exception):
    """The check gave no answer either way (an error, a timeout): try again later."""


class ProbeRefused(ProbeFailed):
    """The check may not be made (not a public address, too many redirects): trying again soon will not help."""


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
    """GETs the check URL through the guarded fetcher: 2xx is reachable, 404, 410 or 451 gone, anything else a
    failed check; a URL the fetcher refuses (not a public address, too many redirects) is a refused check."""

    def __init__(self, template: str, fetcher: GuardedFetcher):
        self.template, self.fetcher = template, fetcher

    async def reachable(self, url: str) -> bool:
        target = check_url(self.template, url)
        try:
            status = (await self.fetcher.get(target)).status
        except Refused as exc:
            raise ProbeRefused(str(exc)) from exc
        except FetchFailed as exc:
            raise ProbeFailed(str(exc)) from exc
        if 200 <= status < 300:
            return True
        if status in GONE:
            return False
        raise ProbeFailed(f"GET {target}: HTTP {status}")

    async def close(self) -> None:
        await self.fetcher.close()
