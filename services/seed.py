"""`takedown seed`: refer an NCA-2020-like set of pages through intake, to try the system out.

By default 1,200 referrals (700 to Facebook, 500 to YouTube) from agency "NCA", submitted over
the batch API like any agency system would, with the agency's demo key from
.takedown/dev-credentials.json; the sandbox's personas then decide them (about 48% removed, 40%
rejected as not breaching terms, 12% never answered). Afterwards:
GET /v1/reports/attrition?agency=NCA on the outcomes service answers the committee's question.
"""

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import typer

from shared.auth import demo

BATCH = 500


def referrals(facebook: int, youtube: int, run: str) -> list[dict]:
    """The submissions: one page each, people smuggling, with an idempotency key per page."""
    pages = [("https://www.facebook.com/groups/crossings-{run}-{n}", n) for n in range(facebook)]
    pages += [("https://www.youtube.com/watch?v={run}{n}", n) for n in range(youtube)]
    return [{"url": url.format(run=run, n=n), "category": "people_smuggling",
             "idempotency_key": f"seed-{run}-{i}", "case_reference": f"SEED-{run}"}
            for i, (url, n) in enumerate(pages)]


def demo_token(agency: str) -> str:
    """The agency's demo API key that `takedown run` wrote; exits saying how to get one if absent."""
    path = Path(os.environ.get("TAKEDOWN_DATA_DIR", ".takedown")) / demo.FILE
    try:
        return json.loads(path.read_text())["agencies"][agency]["token"]
    except (OSError, ValueError, KeyError, TypeError):
        typer.echo(f"error: no demo key for {agency} in {path}: start `make run` first, or pass --token "
                   f"(a key from `takedown keys create --role agency --agency {agency}`)", err=True)
        raise typer.Exit(2) from None


def seed(
    intake: str = typer.Option("http://127.0.0.1:8001", help="The intake service's base URL."),
    outcomes: str = typer.Option("http://127.0.0.1:8003", help="The outcomes service's base URL (for --wait)."),
    facebook: int = typer.Option(700, min=0), youtube: int = typer.Option(500, min=0),
    agency: str = typer.Option("NCA", help="The agency whose demo key refers them."),
    token: str | None = typer.Option(None, envvar="TAKEDOWN_TOKEN", help="An agency API key or access token "
                                     "(default: the agency's demo key)."),
    wait: bool = typer.Option(False, help="Then wait until every referral is decided and print the rate."),
    timeout: float = typer.Option(600, min=1, help="With --wait: give up waiting after this many seconds."),
) -> None:
    """Refer an NCA-like set of pages to Facebook and YouTube through intake."""
    run = uuid.uuid4().hex[:8]
    items = referrals(facebook, youtube, run)
    headers = {"Authorization": f"Bearer {token or demo_token(agency)}"}
    # The agency's attrition report counts from a few minutes before now (the two clocks may differ):
    # once as many are decided there as were referred before plus this run's, this run's are all decided.
    since = datetime.now(UTC) - timedelta(minutes=5)
    try:
        with httpx.Client(base_url=outcomes, timeout=60, headers=headers) as reports:
            before = counts(reports, agency, since)[0] if wait else 0
            started = time.monotonic()
            with httpx.Client(base_url=intake, timeout=60, headers=headers) as client:
                accepted, refused = submit_all(client, items)
            typer.echo(f"referred {accepted} pages as agency {agency!r} (case SEED-{run}) in "
                       f"{time.monotonic() - started:.1f} s" + (f"; intake asked to slow down {refused} times"
                                                                if refused else ""))
            if wait:
                await_decisions(reports, agency, since, before, accepted, started, timeout)
    except httpx.HTTPStatusError as exc:
        typer.echo(f"error: {exc.request.url.host}:{exc.request.url.port} answered {exc.response.status_code}: "
                   f"{exc.response.text[:300]}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"error: cannot reach {exc.request.url.host}:{exc.request.url.port} ({type(exc).__name__}): "
                   "is `make run` going?", err=True)
        raise typer.Exit(2) from None
    if not wait:
        typer.echo("then, as an auditor:\n"
                   "  AUDITOR=$(jq -r .auditor.token .takedown/dev-credentials.json)\n"
                   f"  curl -s -H \"Authorization: Bearer $AUDITOR\" "
                   f"'http://127.0.0.1:8003/v1/reports/attrition?agency={agency}'")


def submit_all(client: httpx.Client, items: list[dict]) -> tuple[int, int]:
    """POST the items in batches; a batch refused with 429 is sent again (same idempotency keys) after its
    Retry-After. How many were accepted, and how many times intake refused a batch."""
    accepted = refused = 0
    for start in range(0, len(items), BATCH):
        while (response := client.post("/v1/referrals/batch", json={"referrals": items[start:start + BATCH]})
               ).status_code == 429:
            refused += 1
            time.sleep(retry_after_s(response))
        response.raise_for_status()
        accepted += response.json()["accepted"]
    return accepted, refused


def retry_after_s(response: httpx.Response, default: float = 1.0, cap: float = 60.0) -> float:
    """The seconds a 429 or 503 asks to wait (Retry-After in seconds), bounded."""
    try:
        return min(cap, max(0.0, float(response.headers.get("Retry-After", default))))
    except ValueError:
        return default


def counts(client: httpx.Client, agency: str, since: datetime) -> tuple[int, int]:
    """Referrals of agency submitted since `since`: how many, and how many of them are decided."""
    response = client.get("/v1/reports/attrition", params={"agency": agency, "from": since.isoformat()})
    response.raise_for_status()
    total = next((r for r in response.json()["rows"] if r["platform"] == "all platforms"), None) or {}
    return total.get("referred", 0), sum(total.get(k, 0) for k in ("removed", "restricted", "rejected"))


def await_decisions(client: httpx.Client, agency: str, since: datetime, before: int, accepted: int,
                    started: float, timeout: float) -> None:
    """Poll the agency's attrition report until the `before` referrals submitted since `since` and the
    `accepted` of this run are all decided; print the rate from the first submission. Exits 1 if they
    are not within timeout."""
    ours = 0
    while time.monotonic() - started < timeout:
        ours = counts(client, agency, since)[1] - before
        if ours >= accepted:
            took = time.monotonic() - started
            typer.echo(f"all {accepted} decided {took:.1f} s after the first submission: {accepted / took:,.0f} "
                       "referrals/s end to end")
            return
        time.sleep(0.5)
    typer.echo(f"{ours} of {accepted} decided after {timeout:.0f} s (a persona that never answers keeps some "
               "pending: see README, platforms out of the way)", err=True)
    raise typer.Exit(1)
