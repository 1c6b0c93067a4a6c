"""Shared plumbing of the HTTP adapters: one client per adapter, answers mapped to DeliveryError,
the decision object (docs/platform-apis.md), OAuth2 client-credentials tokens and HMAC signatures.
Secrets (an adapter config's SecretStr fields) are blanked out of every error message."""

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from services.dispatcher.adapters.base import (AdapterConfig, Decision, DeliveryError, InformationRequest,
                                               InvalidCallback, PlatformAdapter, PlatformAnswer, Receipt)
from shared.events import (AccountAction, Ground, NoActionReason, Platform, ReferralSubmitted, Visibility,
                           describe_errors)

TRANSIENT_STATUS = frozenset({408, 425, 429})
EXCERPT_CHARS = 200
TOKEN_MARGIN_S = 60.0  # a token is refreshed this long before it expires
DEFAULT_TOKEN_TTL_S = 300.0  # when a token response gives no expires_in


# -- responses -> DeliveryError ------------------------------------------------------------------

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


def excerpt(text: str, secrets: tuple[str, ...] = ()) -> str:
    """The start of a body on one line, with any secret blanked out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def error_for(response: httpx.Response, secrets: tuple[str, ...] = ()) -> DeliveryError | None:
    """The DeliveryError a non-2xx answer stands for; None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status} from {response.request.method} {response.request.url.path}"
    if body := excerpt(response.text, secrets):
        reason += f": {body}"
    if status in TRANSIENT_STATUS or status >= 500:
        return DeliveryError(reason, permanent=False, retry_after=retry_after_s(response.headers.get("retry-after")))
    return DeliveryError(reason, permanent=True)  # 3xx and other 4xx (401/403: bad credentials)


def an_id(value: Any) -> str | None:
    """value as a ticket id (a non-blank string or an integer), else None."""
    ok = isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip()
    return str(value) if ok else None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def receipt_from(response: httpx.Response, *path: str, secrets: tuple[str, ...] = ()) -> Receipt:
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


# -- the decision object ---------------------------------------------------------------------------

class InvalidAnswer(ValueError):
    """A decision object or information request that does not follow the contract."""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are ignored; enums are strict


class DecisionObject(_Lenient):
    """The decision object of docs/platform-apis.md."""

    visibility: list[Visibility] = Field(default_factory=list)
    account: AccountAction | None = None
    ground: Ground | None = None
    territorial_scope: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(default_factory=list)
    no_action_reason: NoActionReason | None = None
    explanation: str | None = None
    decided_at: datetime

    @field_validator("visibility", "territorial_scope", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return []  # null reads as none
        if info.field_name == "territorial_scope" and isinstance(value, list):
            return [v.strip().upper() if isinstance(v, str) else v for v in value]
        return value


class InformationRequestObject(_Lenient):
    """What a platform sends in place of a decision when it needs to know more."""

    question: str = Field(min_length=1)
    requested_at: datetime


def parse_answer(envelope: Mapping[str, Any], ticket_id: str, referral_id: UUID) -> PlatformAnswer:
    """The Decision or InformationRequest an object carries under `decision` or `information_request`."""
    decision, request = envelope.get("decision"), envelope.get("information_request")
    if (decision is None) == (request is None):
        raise InvalidAnswer("expected exactly one of 'decision' and 'information_request'")
    try:
        if request is not None:
            asked = InformationRequestObject.model_validate(request)
            return InformationRequest(ticket_id, referral_id, _utc(asked.requested_at), asked.question)
        d = DecisionObject.model_validate(decision)
    except ValidationError as exc:
        raise InvalidAnswer(describe_errors(exc)) from None
    return Decision(ticket_id=ticket_id, referral_id=referral_id, decided_at=_utc(d.decided_at),
                    visibility=tuple(d.visibility), account=d.account, ground=d.ground,
                    territorial_scope=tuple(d.territorial_scope), no_action_reason=d.no_action_reason,
                    explanation=d.explanation)


def answer_from_status(body: Mapping[str, Any], ticket_id: str, referral_id: UUID) -> PlatformAnswer | None:
    """A polled ticket's answer: None while `status` is open, else its decision or information request."""
    status, answered = body.get("status"), "decision" in body or "information_request" in body
    if status in ("open", "received") or (status is None and not answered):
        return None
    if status not in (None, "decided", "information_requested"):
        raise InvalidAnswer(f"unknown ticket status {excerpt(str(status))!r}")
    return parse_answer(body, ticket_id, referral_id)


# -- callbacks ---------------------------------------------------------------------------------------

def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with lower-case names, whatever mapping they came in."""
    return {k.lower(): v for k, v in headers.items()}


def callback_json(body: bytes) -> dict[str, Any]:
    """A callback's JSON object; InvalidCallback when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidCallback("callback body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidCallback("callback body is not a JSON object")
    return data


def callback_answer(item: Any, ticket_key: str, reference_key: str) -> PlatformAnswer:
    """The answer one callback item carries (ticket and referral id under the given keys)."""
    if not isinstance(item, dict):
        raise InvalidCallback("callback item is not a JSON object")
    ticket = an_id(item.get(ticket_key))
    if ticket is None:
        raise InvalidCallback(f"callback without {ticket_key!r}")
    try:
        referral_id = UUID(str(item.get(reference_key)))
    except ValueError:
        raise InvalidCallback(f"callback {reference_key!r} is not a referral id") from None
    try:
        return parse_answer(item, ticket, referral_id)
    except InvalidAnswer as exc:
        raise InvalidCallback(f"invalid decision object: {exc}") from None


# -- signatures ----------------------------------------------------------------------------------------

def hmac_sha256(secret: SecretStr | str, message: bytes) -> bytes:
    """HMAC-SHA256 of message under secret."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def hex_signature(secret: SecretStr | str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>` (meta's callbacks, the generic webhook)."""
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


class HttpAdapter(PlatformAdapter):
    """A PlatformAdapter over HTTP: one httpx.AsyncClient, non-2xx answers raised as DeliveryError.

    With api_key_header set, every request carries the config's api_key in that header.
    """

    api_key_header: ClassVar[str | None] = None

    def __init__(self, config: AdapterConfig, platforms: tuple[Platform, ...] | None = None):
        super().__init__(config, platforms)
        headers = {"User-Agent": f"takedown-{self.slug}/{self.version}"}
        if self.api_key_header:
            headers[self.api_key_header] = config.api_key.get_secret_value()
        self.http = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout_s, headers=headers)

    def secrets(self) -> tuple[str, ...]:
        """Every secret in the config, to blank out of error messages."""
        return tuple(v.get_secret_value() for v in vars(self.config).values() if isinstance(v, SecretStr))

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a failure to get an answer (timeouts included) is a transient DeliveryError."""
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.RequestError as exc:  # connection, timeout, protocol, undecodable body
            raise DeliveryError(f"{type(exc).__name__} on {method} {path}: {excerpt(str(exc), self.secrets())}",
                                permanent=False) from exc

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request whose non-2xx answer raises DeliveryError."""
        response = await self.request(method, path, **kwargs)
        if error := error_for(response, self.secrets()):
            raise error
        return response

    async def close(self) -> None:
        """Close the adapter's connections."""
        await self.http.aclose()


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
                   **kwargs: Any) -> httpx.Response:
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
