"""Shared plumbing of the HTTP adapters: one client per adapter, responses mapped to DeliveryError,
OAuth2 client-credentials tokens and HMAC signatures (answers.py reads what platforms answer).
Secrets (an adapter config's SecretStr fields) are blanked out of every error message.

The client is aiohttp's, by measurement (bench/http_clients.py): httpx's pool looks at every
connection, and at every other for each, whenever a request comes or goes (~4 ms of CPU a request
at 32 in flight, against ~0.25 ms). Adapters talk to platform APIs only: what is fetched from a
referred URL goes through shared/fetch.py and its guards.
"""

import asyncio
import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from json import dumps, loads
from typing import Any, ClassVar
from urllib.parse import quote
from uuid import UUID

import aiohttp
from pydantic import SecretStr

from services.dispatcher.adapters.answers import (  # noqa: F401 - the adapters import them from here
    InvalidAnswer, an_id, answer_from_status, callback_answer, callback_json, excerpt, lower_keys, parse_answer)
from services.dispatcher.adapters.base import (AdapterConfig, DeliveryError, PlatformAdapter, PlatformAnswer,
                                               Receipt)
from shared.events import InformationSupplied, Platform, ReferralSubmitted

TRANSIENT_STATUS = frozenset({408, 425, 429})
TOKEN_MARGIN_S = 60.0  # a token is refreshed this long before it expires
DEFAULT_TOKEN_TTL_S = 300.0  # when a token response gives no expires_in


# -- responses -> DeliveryError ------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """A platform's answer to one request, read in full: what the adapters look at."""

    method: str
    path: str
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return loads(self.content)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    try:
        seconds = float(value or "")
    except ValueError:
        try:
            moment = parsedate_to_datetime((value or "").strip())
        except (TypeError, ValueError, IndexError):
            return None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_for(response: Answer, secrets: tuple[str, ...] = ()) -> DeliveryError | None:
    """The DeliveryError a non-2xx answer stands for; None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status} from {response.method} {response.path}"
    if body := excerpt(response.text, secrets):
        reason += f": {body}"
    if status in TRANSIENT_STATUS or status >= 500:
        return DeliveryError(reason, permanent=False, retry_after=retry_after_s(response.headers.get("retry-after")))
    return DeliveryError(reason, permanent=True)  # 3xx and other 4xx (401/403: bad credentials)


def _failure(exc: BaseException) -> str:
    """What kind of failure kept an answer from coming, in the same words whatever the client."""
    if isinstance(exc, TimeoutError):
        return "Timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    return type(exc).__name__


def json_object(response: Answer) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def receipt_from(response: Answer, *path: str, secrets: tuple[str, ...] = ()) -> Receipt:
    """A Receipt from the ticket id at path; a transient DeliveryError when it is missing."""
    body = json_object(response)
    holder: Any = body
    for key in path[:-1]:
        holder = holder.get(key) if isinstance(holder, dict) else None
    ticket = an_id(holder.get(path[-1]) if isinstance(holder, dict) else None)
    if ticket is None:
        # The report may have been taken: retrying with the same Idempotency-Key is safe.
        raise DeliveryError(f"HTTP {response.status_code} without a ticket id ({'.'.join(path)}): "
                            f"{excerpt(response.text, secrets)}", permanent=False)
    duplicate = body.get("duplicate") is True or (isinstance(holder, dict) and holder.get("duplicate") is True)
    return Receipt(ticket_id=ticket, duplicate=duplicate)


# -- signatures ----------------------------------------------------------------------------------------

def hmac_sha256(secret: SecretStr | str, message: bytes) -> bytes:
    """HMAC-SHA256 of message under secret."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def hex_signature(secret: SecretStr | str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>` (meta's callbacks)."""
    return "sha256=" + hmac_sha256(secret, body).hex()


def base64_signature(secret: SecretStr | str, message: bytes) -> str:
    """`sha256=<base64 HMAC-SHA256(secret, message)>` (x's callbacks)."""
    return "sha256=" + base64.b64encode(hmac_sha256(secret, message)).decode()


def signatures_match(expected: str, given: str | None) -> bool:
    """Whether a signature header equals the expected one, compared in constant time."""
    return bool(given) and hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace"))


# -- adapters ---------------------------------------------------------------------------------------------

def callback_url(config: AdapterConfig, referral: ReferralSubmitted) -> str:
    """Where the platform posts its decision on referral."""
    return f"{config.callback_base_url.rstrip('/')}/v1/callbacks/{referral.platform.value}"


def idempotency(referral: ReferralSubmitted) -> dict[str, str]:
    """The header that makes a repeated report return the first ticket."""
    return {"Idempotency-Key": referral.delivery_key}  # one report per dispatch: "<id>" or "<id>/<n>"


def ticket_path(prefix: str, ticket_id: str, suffix: str = "") -> str:
    """prefix/<ticket id, escaped>suffix: the path of one ticket (or of what hangs under it)."""
    return f"{prefix}/{quote(ticket_id, safe='')}{suffix}"


def evidence_hashes(supplied: InformationSupplied) -> list[str]:
    """The SHA-256 of each piece of evidence an answer supplies."""
    return [item.sha256 for item in supplied.evidence]


class HttpAdapter(PlatformAdapter):
    """A PlatformAdapter over HTTP: one client session, non-2xx answers raised as DeliveryError.

    The session keeps connections alive (as many as the lane's reports and the polls under way),
    follows no redirect and keeps no cookie. With api_key_header set, every
    request carries the config's api_key in that header.
    """

    api_key_header: ClassVar[str | None] = None

    def __init__(self, config: AdapterConfig, platforms: tuple[Platform, ...] | None = None):
        super().__init__(config, platforms)
        self.headers = {"User-Agent": f"takedown-{self.slug}/{self.version}"}
        if self.api_key_header:
            self.headers[self.api_key_header] = config.api_key.get_secret_value()
        self.base_url = config.base_url.rstrip("/") + "/"  # a path is under it, with or without its leading /
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The adapter's client session, made on first use (in the loop that serves the adapter)."""
        if self._session is None:
            # No pool limit: the lane's semaphore (max_in_flight) bounds deliveries and poll_due its polls;
            # a pool of max_in_flight made polls and deliveries queue for connections, and aiohttp counts
            # that queueing as a connect timeout, which the breaker took for a failing platform. So the
            # timeout is for connecting (sock_connect) and each read, never for waiting on the pool.
            # No trust_env: it would honour HTTP(S)_PROXY, but aiohttp then reads ~/.netrc in a thread on
            # every request (12% of the dispatcher's CPU in the profile); a proxy is not read from the env.
            wait = self.config.timeout_s
            self._session = aiohttp.ClientSession(
                headers=self.headers, connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=wait, sock_read=wait),
                cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def secrets(self) -> tuple[str, ...]:
        """Every secret in the config, to blank out of error messages."""
        return tuple(v.get_secret_value() for v in vars(self.config).values() if isinstance(v, SecretStr))

    async def request(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
                      data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None) -> Answer:
        """One request (a body as JSON, bytes or a form); a failure to get an answer (timeouts
        included) is a transient DeliveryError."""
        if json is not None:
            content = dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with self.session().request(method, self.base_url + path.lstrip("/"), headers=headers,
                                              data=content if content is not None else data,
                                              allow_redirects=False) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:  # connection, timeout, protocol
            raise DeliveryError(f"{_failure(exc)} on {method} {path}: {excerpt(str(exc), self.secrets())}",
                                permanent=False) from exc
        return Answer(method, response.url.path, response.status, response.headers, body)

    async def send(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request whose non-2xx answer raises DeliveryError."""
        response = await self.request(method, path, **kwargs)
        if error := error_for(response, self.secrets()):
            raise error
        return response

    async def poll_ticket(self, path: str, ticket_id: str, referral_id: UUID, *, within: str | None = None,
                          headers: Mapping[str, str] | None = None) -> PlatformAnswer | None:
        """GET a ticket's status at path (under the key `within` of the answer, if given): its decision
        or information request, None while it is open.

        An answer that cannot be read is a permanent DeliveryError: the ticket stays open."""
        body = json_object(await self.send("GET", path, headers=dict(headers or {})))
        if within is not None:
            body = body.get(within) if isinstance(body.get(within), dict) else {}
        try:
            return answer_from_status(body, ticket_id, referral_id)
        except InvalidAnswer as exc:
            raise DeliveryError(f"{self.slug} ticket {ticket_id}: {exc}", permanent=True) from None

    async def post_answer(self, path: str, idempotency_key: str, **kwargs: Any) -> None:
        """POST an agency's answer to path with its Idempotency-Key; a non-2xx answer raises DeliveryError
        (404, an unknown ticket: permanent)."""
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": idempotency_key}
        await self.send("POST", path, headers=headers, **kwargs)

    async def close(self) -> None:
        """Close the adapter's connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class TokenCache:
    """OAuth2 client-credentials access tokens: fetched once, reused until a minute before expiry."""

    def __init__(self, adapter: HttpAdapter, path: str, client_id: str, client_secret: SecretStr,
                 clock: Callable[[], float] = time.monotonic):
        self.adapter, self.path, self.client_id, self.client_secret = adapter, path, client_id, client_secret
        self.clock, self._lock = clock, asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    async def get(self) -> str:
        """A valid access token, fetched when there is none or it is about to expire."""
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - TOKEN_MARGIN_S:
                self._token, self._expires_at = await self._fetch()
            return self._token

    def forget(self, token: str) -> None:
        """Drop token (the platform refused it) so that the next get() fetches a new one."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret.get_secret_value()}
        response = await self.adapter.request("POST", self.path, data=form)
        if error := error_for(response, self.adapter.secrets()):
            raise DeliveryError(f"token request refused: {error.reason}", permanent=error.permanent,
                                retry_after=error.retry_after)
        body = json_object(response)
        token, ttl = body.get("access_token"), body.get("expires_in", DEFAULT_TOKEN_TTL_S)
        if not isinstance(token, str) or not token:
            raise DeliveryError(f"HTTP {response.status_code} token answer without an access_token", permanent=False)
        ttl = float(ttl) if isinstance(ttl, int | float) and not isinstance(ttl, bool) else DEFAULT_TOKEN_TTL_S
        return token, self.clock() + ttl


class OAuth2Adapter(HttpAdapter):
    """An HttpAdapter whose requests carry a bearer token; a 401 fetches a new token once."""

    token_path: ClassVar[str]

    def __init__(self, config: AdapterConfig, platforms: tuple[Platform, ...] | None = None):
        super().__init__(config, platforms)
        self.tokens = TokenCache(self, self.token_path, config.client_id, config.client_secret)

    async def send(self, method: str, path: str, headers: Mapping[str, str] | None = None,
                   **kwargs: Any) -> Answer:
        """One authorised request; a refused token is replaced once, then a 401 is permanent."""
        for last in (False, True):
            token = await self.tokens.get()
            response = await self.request(method, path, headers={**(headers or {}),
                                                                  "Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401 or last:
                break
            self.tokens.forget(token)
        if error := error_for(response, self.secrets()):
            raise error
        return response
