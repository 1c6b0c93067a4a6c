"""What every dialect shares: the persona gate, credentials, Idempotency-Key, tickets, their status
views and the answers agencies send to them.

Every request to a platform's dialect passes the gate first (before credentials and
validation, as a platform's load balancer would answer): an outage answers 503 (or, started by
the admin with another kind, 500, or holds the request past the client's timeout and then serves
it), a spent rate limit 429 with Retry-After, then the persona's latency is waited out and, for
reports and answers, the persona's error rate answers 500.
"""

import asyncio
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Header, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import Field

from services.sandbox.runtime import Sandbox, sandbox_of
from services.sandbox.state import Answer, Ticket
from services.sandbox.traffic import whole_seconds
from shared.events import Platform

log = logging.getLogger(__name__)

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                       description="The referral id; a replay returns the first ticket.")]
AnswerKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                  description="Names the answer; a replay returns the first and records none.")]
CALLBACK_URL_PATTERN = r"^https?://"
AnswerText = Annotated[str, Field(min_length=1, max_length=10_000)]
EvidenceHashes = Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]],
                           Field(default_factory=list, max_length=1000)]


async def admit(sandbox: Sandbox, platform: Platform, *, report: bool) -> None:
    """Count the request and refuse it as the platform's persona says (503, 429, 500), after its latency;
    in a `timeout` outage, hold it for the outage's hang_s first and then go on as if up."""
    store, traffic = sandbox.store, sandbox.traffic
    store.count(platform, "requests")
    outage = traffic.outage(platform)
    if outage is not None and outage[0] == "timeout":
        store.count(platform, "hung")
        await asyncio.sleep(outage[1])  # the client has given up by now; the report is taken all the same
    elif outage is not None and outage[0] == "error":
        store.count(platform, "errors")
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"{platform.value}: internal error (outage)")
    elif outage is not None:
        store.count(platform, "unavailable")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{platform.value} is unavailable (outage)",
                            headers={"Retry-After": str(whole_seconds(traffic.outage_remaining_s(platform) or 1))})
    if not traffic.admit(platform):
        store.count(platform, "throttled")
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"{platform.value}: rate limit exceeded",
                            headers={"Retry-After": str(traffic.retry_after_s(platform))})
    delay = traffic.latency_s(platform)
    if delay > 0:
        await asyncio.sleep(delay)
    if report and traffic.fails(platform):
        store.count(platform, "errors")
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"{platform.value}: internal error")


def gate(platform: Platform, *, report: bool):
    """A dependency passing requests to platform through its persona's gate."""

    async def dependency(request: Request) -> None:
        await admit(sandbox_of(request), platform, report=report)

    return Depends(dependency)


def api_key(setting: str):
    """A dependency requiring X-Api-Key to equal the named setting: 403 otherwise."""

    async def dependency(request: Request) -> None:
        expected = getattr(sandbox_of(request).settings, setting)
        if not _same(request.headers.get("X-Api-Key"), expected):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")

    return Depends(dependency)


def bearer(dialect: str):
    """A dependency requiring an unexpired access token issued by dialect's token endpoint: 401 otherwise."""

    async def dependency(request: Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not sandbox_of(request).tokens.valid(dialect, token.strip()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing, invalid or expired access token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    return Depends(dependency)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def issue_token(request: Request, *, dialect: str, platforms: tuple[Platform, ...],
                      client_id: str, client_secret: str) -> JSONResponse:
    """OAuth2 client credentials from a form body: an access token, 400 or 401.

    The endpoint is shared by the dialect's platforms: an outage of any of them takes it down.
    """
    sandbox = sandbox_of(request)
    for platform in platforms:
        if sandbox.traffic.outage_remaining_s(platform) is not None:
            await admit(sandbox, platform, report=False)  # counts it and answers as the outage's kind says
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    no_store = {"Cache-Control": "no-store"}
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status.HTTP_400_BAD_REQUEST, headers=no_store)
    if not (_same(form.get("client_id"), client_id) and _same(form.get("client_secret"), client_secret)):
        return JSONResponse({"error": "invalid_client"}, status.HTTP_401_UNAUTHORIZED, headers=no_store)
    token = sandbox.tokens.issue(dialect)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": sandbox.tokens.ttl_s},
                        headers=no_store)


def open_ticket(request: Request, key: str, *, dialect: str, platform: Platform, reference: str, url: str,
                callback_url: str | None = None, named_platform: Platform | None = None) -> tuple[Ticket, bool]:
    """The ticket for key on platform and whether it is a replay; a new one starts its course."""
    sandbox = sandbox_of(request)
    ticket, duplicate = sandbox.store.receive(key, dialect=dialect, platform=platform, reference=reference,
                                              url=url, callback_url=callback_url, now=datetime.now(UTC),
                                              named_platform=named_platform)
    if not duplicate:
        log.info("ticket %s opened (%s) for reference %s", ticket.ticket_id, dialect, reference)
        sandbox.decider.open(ticket)
    return ticket, duplicate


def ticket_gate(dialect: str, id_param: str, *, report: bool):
    """A dependency passing a request about the ticket in path parameter id_param through the gate of
    the ticket's platform (meta's reports are facebook's or instagram's); an unknown ticket passes, to 404."""

    async def dependency(request: Request) -> None:
        sandbox = sandbox_of(request)
        ticket = sandbox.store.find(request.path_params[id_param], dialect=dialect)
        if ticket is not None:
            await admit(sandbox, ticket.platform, report=report)

    return Depends(dependency)


def polled(ticket: Ticket, id_field: str, reference_field: str | None = None) -> dict:
    """A status view: open, information_requested (with the request) or decided (with the decision);
    with reference_field, the referral id under that name too (what the dialect's callbacks carry)."""
    body: dict = {id_field: ticket.ticket_id}
    if reference_field:
        body[reference_field] = ticket.reference
    body["status"] = ticket.status
    if ticket.status == "decided":
        body["decision"] = ticket.decision
    elif ticket.status == "information_requested":
        body["information_request"] = ticket.information_request
    return body


def find_ticket(request: Request, ticket_id: str, *, dialect: str, platform: Platform | None = None) -> Ticket:
    """The dialect's ticket (of platform, when given); 404 if there is none."""
    ticket = sandbox_of(request).store.find(ticket_id, dialect=dialect, platform=platform)
    if ticket is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report {ticket_id!r}")
    return ticket


def take_answer(request: Request, response: Response, ticket: Ticket, key: str, *, reference: str, text: str,
                evidence: list[str]) -> tuple[Answer, bool]:
    """Record an agency's answer on ticket (201; a replayed key: 200 and the first answer, none recorded).

    409 when it names another referral than the ticket's. A ticket waiting for an answer is decided
    after its persona's delay; an answer to one that asked nothing is recorded all the same."""
    if reference != ticket.reference:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"report {ticket.ticket_id!r} is not about reference {reference!r}")
    sandbox = sandbox_of(request)
    answer, duplicate = sandbox.store.answer(ticket, key, text=text, evidence=evidence, now=datetime.now(UTC))
    if duplicate:
        response.status_code = status.HTTP_200_OK
    else:
        log.info("ticket %s: answer %s received (%s)", ticket.ticket_id, answer.answer_id, ticket.status)
        sandbox.decider.answered(ticket)
    return answer, duplicate


def news(ticket: Ticket) -> dict:
    """What a callback carries for ticket's latest step: its decision or its information request."""
    if ticket.status == "decided":
        return {"decision": ticket.decision}
    return {"information_request": ticket.information_request}


def to_json(payload: dict) -> bytes:
    """A callback's raw body: the exact bytes that are signed and posted."""
    return json.dumps(payload, separators=(",", ":")).encode()
