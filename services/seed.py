"""`takedown seed`: refer an NCA-2020-like set of pages through intake, to try the system out.

By default 1,200 referrals (700 to Facebook, 500 to YouTube) from agency "NCA", submitted over
the batch API like any agency system would, with the agency's demo key from
.takedown/dev-credentials.json; the sandbox's personas then decide them (about 48% removed, 40%
rejected as not breaching terms, 12% never answered). Afterwards:
GET /v1/reports/attrition?agency=NCA on the outcomes service answers the committee's question.
"""

import json
import os
import uuid
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
    facebook: int = typer.Option(700, min=0), youtube: int = typer.Option(500, min=0),
    agency: str = typer.Option("NCA", help="The agency whose demo key refers them."),
    token: str | None = typer.Option(None, envvar="TAKEDOWN_TOKEN", help="An agency API key or access token "
                                     "(default: the agency's demo key)."),
) -> None:
    """Refer an NCA-like set of pages to Facebook and YouTube through intake."""
    run = uuid.uuid4().hex[:8]
    items = referrals(facebook, youtube, run)
    headers = {"Authorization": f"Bearer {token or demo_token(agency)}"}
    accepted = 0
    try:
        with httpx.Client(base_url=intake, timeout=60, headers=headers) as client:
            for start in range(0, len(items), BATCH):
                response = client.post("/v1/referrals/batch", json={"referrals": items[start:start + BATCH]})
                response.raise_for_status()
                accepted += response.json()["accepted"]
    except httpx.HTTPStatusError as exc:
        typer.echo(f"error: intake answered {exc.response.status_code}: {exc.response.text[:300]}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"error: cannot reach intake at {intake} ({type(exc).__name__}): is `make run` going?", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"referred {accepted} pages as agency {agency!r} (case SEED-{run}); then, as an auditor:\n"
               "  AUDITOR=$(jq -r .auditor.token .takedown/dev-credentials.json)\n"
               f"  curl -s -H \"Authorization: Bearer $AUDITOR\" "
               f"'http://127.0.0.1:8003/v1/reports/attrition?agency={agency}'")
