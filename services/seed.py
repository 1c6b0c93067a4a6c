"""`takedown seed`: refer an NCA-2020-like set of pages through intake, to try the system out.

By default 1,200 referrals (700 to Facebook, 500 to YouTube) from agency "NCA", submitted over
the batch API like any agency system would; the sandbox's personas then decide them (about 48%
removed, 40% rejected as not breaching terms, 12% never answered). Afterwards:
GET /v1/reports/attrition?agency=NCA on the outcomes service answers the committee's question.
"""

import uuid

import httpx
import typer

BATCH = 500


def referrals(facebook: int, youtube: int, agency: str, run: str) -> list[dict]:
    """The submissions: one page each, people smuggling, with an idempotency key per page."""
    pages = [("https://www.facebook.com/groups/crossings-{run}-{n}", n) for n in range(facebook)]
    pages += [("https://www.youtube.com/watch?v={run}{n}", n) for n in range(youtube)]
    return [{"agency": agency, "url": url.format(run=run, n=n), "category": "people_smuggling",
             "idempotency_key": f"seed-{run}-{i}", "case_reference": f"SEED-{run}"}
            for i, (url, n) in enumerate(pages)]


def seed(
    intake: str = typer.Option("http://127.0.0.1:8001", help="The intake service's base URL."),
    facebook: int = typer.Option(700, min=0), youtube: int = typer.Option(500, min=0),
    agency: str = typer.Option("NCA"),
) -> None:
    """Refer an NCA-like set of pages to Facebook and YouTube through intake."""
    run = uuid.uuid4().hex[:8]
    items = referrals(facebook, youtube, agency, run)
    accepted = 0
    with httpx.Client(base_url=intake, timeout=60) as client:
        for start in range(0, len(items), BATCH):
            response = client.post("/v1/referrals/batch", json={"referrals": items[start:start + BATCH]})
            response.raise_for_status()
            accepted += response.json()["accepted"]
    typer.echo(f"referred {accepted} pages as agency {agency!r} (case SEED-{run}); then, as an auditor:\n"
               f"  curl -s -H 'X-Actor: user:auditor' 'http://127.0.0.1:8003/v1/reports/attrition?agency={agency}'")
