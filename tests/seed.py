"""Seeded referral states for read-side tests, COPYed straight into outcomes.referrals.

nca_set() is the question the system exists for: NCA referred 1,200 pages to facebook (700) and
youtube (500) from January to May 2020; 578 were removed, 485 rejected as no_violation and 137
never answered. Around it: Europol's referrals to x in every other fate, referrals just outside
the period, and one whose submission is not recorded yet. Every row is a plain dict that also
says, under "fate", where the referral ended up; expected_attrition() works out each report
figure from those rows in plain Python, independently of the SQL under test.
"""

import asyncio
import json
import math
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid5

import asyncpg
from sqlalchemy.engine import make_url

from shared import db

COLUMNS = ("referral_id", "agency", "platform", "category", "url", "canonical_url", "priority", "case_reference",
           "status", "outcome", "reason", "ticket_id", "failure_reason", "submitted_at", "dispatched_at",
           "acknowledged_at", "information_requested_at", "decided_at", "closed_at", "last_event_at",
           "first_recorded_at", "overdue", "deadline", "dispatches", "reachable", "transitions", "anomalies")
MIGRATIONS = Path(__file__).parent.parent / "services" / "outcomes" / "migrations"
NAMESPACE = UUID("5e3d7a52-1f0c-4c55-9a53-2f3a3c0e2d11")
PERIOD = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 6, 1, tzinfo=UTC))
EVENT_OF = {"submitted": "referral.submitted", "dispatched": "referral.dispatched",
            "dispatch_failed": "referral.dispatch_failed", "acknowledged": "takedown.acknowledged",
            "information_requested": "takedown.information_requested", "decided": "takedown.decided",
            "escalated": "referral.escalated", "appealed": "referral.appealed", "reopened": "content.reappeared",
            "expired": "referral.expired", "withdrawn": "referral.withdrawn", "closed": "referral.closed",
            "gone_without_reply": "content.gone_without_reply"}
TIME_OF = {"dispatched": "dispatched_at", "acknowledged": "acknowledged_at",
           "information_requested": "information_requested_at", "decided": "decided_at", "closed": "closed_at"}
H = timedelta(hours=1)


def referral(key: str, submitted_at: datetime | None, steps: list[tuple[str, timedelta]] = (),
             fate: str | None = None, **values) -> dict:
    """A state row as the outcomes fold leaves it after `steps` (status, time after submission).

    `fate` (not a column) is where the seed says the referral ended up: its outcome, pending, expired,
    withdrawn, closed_without_decision or removed_without_reply; tests count by it.
    """
    row = dict.fromkeys(COLUMNS)
    base = submitted_at or datetime(2020, 3, 1, tzinfo=UTC)
    row.update(referral_id=uuid5(NAMESPACE, key), submitted_at=submitted_at, overdue=False,
               dispatches=int(any(status == "dispatched" for status, _ in steps)),
               anomalies=[], first_recorded_at=base, status="submitted", last_event_at=base)
    transitions, before = [], None
    for status, offset in ([("submitted", timedelta(0))] if submitted_at else []) + list(steps):
        at = base + offset
        transitions.append({"from": before, "to": status, "at": at.isoformat(), "event_type": EVENT_OF[status],
                            "event_id": str(uuid5(NAMESPACE, f"{key}/{status}/{offset}"))})
        row.update(status=status, last_event_at=at)
        if status in TIME_OF:
            row[TIME_OF[status]] = at
        before = status
    row.update(transitions=transitions, **values)
    row["fate"] = fate or row["outcome"] or "pending"
    return row


def decided(hours: float, *after: tuple[str, float]) -> list[tuple[str, timedelta]]:
    """Steps of a referral dispatched a minute in, acknowledged at half an hour, decided `hours` in."""
    return [("dispatched", timedelta(minutes=1)), ("acknowledged", H / 2), ("decided", hours * H),
            *((status, at * H) for status, at in after)]


def nca_facebook(i: int) -> dict:
    at = datetime(2020, 1 + i % 5, 1 + (i // 5) % 28, (7 * i) % 24, tzinfo=UTC)
    common = dict(agency="NCA", platform="facebook", priority=("normal", "high", "urgent", "low")[i % 4],
                  category=("people_smuggling", "people_smuggling", "human_trafficking", "fraud")[i % 4],
                  url=f"https://www.facebook.com/groups/g{i % 20}/posts/{i}?fbclid=nca{i}",
                  canonical_url=f"https://facebook.com/groups/g{i % 20}/posts/{i}",
                  case_reference=f"NCA/OP-{i % 6}", ticket_id=f"FB-{i}")
    if i < 350:
        hours, reachable = 1 + i % 10, (True if i % 25 == 3 else False if i % 7 == 0 else None)
        after = [("reopened", hours + 48)] if reachable else [("closed", hours + 24)] if i % 9 == 0 else []
        return referral(f"fb{i}", at, decided(hours, *after), outcome="removed", reachable=reachable, **common)
    if i < 630:
        return referral(f"fb{i}", at, decided(24 * (1 + (i - 350) % 4)), outcome="rejected", reason="no_violation",
                        **common)
    status = ("dispatched", "acknowledged", "escalated")[i % 3]
    steps = decided(0)[:2] + ([("escalated", 30 * 24 * H)] if status == "escalated" else [])
    return referral(f"fb{i}", at, steps[: 1 if status == "dispatched" else None], overdue=i % 2 == 0,
                    dispatches=2 if status == "escalated" else 1, deadline=at + 7 * 24 * H, **common)


def nca_youtube(j: int) -> dict:
    at = datetime(2020, 1 + j % 5, 1 + (j // 5) % 28, (7 * j) % 24, tzinfo=UTC)  # the same times as facebook's
    common = dict(agency="NCA", platform="youtube", priority="normal",
                  category=("violent_extremism", "terrorism", "people_smuggling")[j % 3],
                  url=f"https://www.youtube.com/watch?v=nca{j:05d}&t=1s",
                  canonical_url=f"https://youtube.com/watch?v=nca{j:05d}", case_reference=f"NCA/OP-{j % 6}",
                  ticket_id=f"YT-{j}")
    if j < 228:
        hours, reachable = 2 * (1 + j % 6), (True if j % 10 == 1 else False if j % 4 == 0 else None)
        after = [("reopened", hours + 72)] if reachable else []
        return referral(f"yt{j}", at, decided(hours, *after), outcome="removed", reachable=reachable, **common)
    if j < 433:
        return referral(f"yt{j}", at, decided(12 * (1 + (j - 228) % 5)), outcome="rejected", reason="no_violation",
                        **common)
    return referral(f"yt{j}", at, decided(0)[: 1 + j % 2], **common)


def europol_x() -> list[dict]:
    """Europol's referrals to x, one or a few in every fate the reports distinguish."""
    def x(key: str, day: int, steps, **values) -> dict:
        at = datetime(2020, 2, day, 10, tzinfo=UTC)
        return referral(f"x-{key}", at, steps, agency="Europol", platform="x", category="terrorism", priority="high",
                        url=f"https://twitter.com/i/{key}", canonical_url=f"https://x.com/i/status/{key}",
                        case_reference="EP/ALPHA, \"north\"", **values)

    rows = [x(f"restricted{k}", 1 + k, decided(5), outcome="restricted", reachable=(None, True, False)[k % 3])
            for k in range(6)]
    rows += [x(f"insufficient{k}", 8 + k, decided(10), outcome="rejected", reason="insufficient_information")
             for k in range(4)]
    rows += [
        x("not-found", 12, decided(3), outcome="rejected", reason="content_not_found"),
        x("no-reason", 13, decided(7), outcome="rejected"),
        # An appeal sets the rejection aside (outcome, reason and decided_at cleared) until a new decision.
        x("appealed", 14, decided(20, ("appealed", 30)), decided_at=None, dispatches=2),
        *(x(f"asked{k}", 15 + k, [("dispatched", H), ("information_requested", 4 * H)]) for k in range(3)),
        *(x(f"expired{k}", 18 + k, [("dispatched", H), ("expired", 14 * 24 * H)], fate="expired") for k in range(2)),
        x("expired-closed", 20, [("dispatched", H), ("expired", 14 * 24 * H), ("closed", 15 * 24 * H)],
          fate="expired"),
        x("expired-decided", 21, [("dispatched", H), ("expired", 336 * H), ("decided", 400 * H)], outcome="removed"),
        x("withdrawn", 22, [("dispatched", H), ("withdrawn", 2 * H)], fate="withdrawn"),
        x("withdrawn-closed", 23, [("dispatched", H), ("withdrawn", 2 * H), ("closed", 3 * H)], fate="withdrawn"),
        x("failed-closed", 24, [("dispatch_failed", H), ("closed", 48 * H)], failure_reason="HTTP 410",
          fate="closed_without_decision"),
        x("failed", 25, [("dispatch_failed", H)], failure_reason="HTTP 503"),
        # Content a liveness check found gone before the platform replied, then left so, closed, withdrawn or decided.
        x("gone", 27, [("dispatched", H), ("gone_without_reply", 2 * H)], fate="removed_without_reply"),
        x("gone-closed", 27, [("dispatched", H), ("gone_without_reply", 2 * H), ("closed", 48 * H)],
          fate="removed_without_reply"),
        x("gone-withdrawn", 28, [("dispatched", H), ("gone_without_reply", 2 * H), ("withdrawn", 3 * H)],
          fate="removed_without_reply"),
        x("gone-decided", 29, [("dispatched", H), ("gone_without_reply", 2 * H), ("decided", 30 * H)],
          outcome="rejected", reason="content_not_found"),
        x("submitted", 26, []),
    ]
    rows[0]["canonical_url"], rows[-1]["canonical_url"] = "https://x.com/a_b%/status/1", "https://x.com/aXbY/status/2"
    rows[1]["submitted_at"] = datetime(2020, 3, 31, 23, 30, tzinfo=UTC)  # March in UTC, April east of it
    return rows


def nca_set() -> list[dict]:
    """The NCA set (1,200 referrals in PERIOD), Europol's referrals to x, and the rows at its edges."""
    edges = [
        referral("before", PERIOD[0] - timedelta(seconds=1), decided(2), agency="NCA", platform="facebook",
                 category="fraud", outcome="removed", canonical_url="https://facebook.com/before"),
        referral("at-end", PERIOD[1], decided(2), agency="NCA", platform="facebook", category="fraud",
                 outcome="removed", canonical_url="https://facebook.com/at-end"),
        referral("unsubmitted", None, [("decided", 59 * 24 * H)], platform="youtube", outcome="removed"),
    ]
    return [*map(nca_facebook, range(700)), *map(nca_youtube, range(500)), *europol_x(), *edges]


def bulk_set(n: int) -> list[dict]:
    """n referrals for exports, with text that needs CSV quoting; every 50th without a submission."""
    return [referral(f"bulk{i}", None if i % 50 == 0 else datetime(2021, 1, 1, tzinfo=UTC) + i * timedelta(minutes=7),
                     decided(3) if i % 2 else [], agency="BULK", platform=("tiktok", "telegram")[i % 2],
                     category="fraud", canonical_url=f"https://tiktok.com/@seller{i}/video/{i}",
                     case_reference=f'lot {i}, "boxed"\nline two – Ü', outcome="removed" if i % 2 else None)
            for i in range(n)]


def fresh_database(server) -> str:
    """A new, empty database on a running Postgres (the postgres_server fixture's); its URL."""
    name = f"a_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(user="postgres", host=str(server.socket_dir), port=server.port,
                                     database="postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    return f"postgresql+asyncpg://postgres@/{name}?host={server.socket_dir}&port={server.port}"


async def insert(database_url: str, rows: list[dict]) -> None:
    """COPY rows into outcomes.referrals, as the outcomes fold would have left them."""
    url = make_url(database_url)
    conn = await asyncpg.connect(user=url.username, host=url.query["host"], port=int(url.query["port"]),
                                 database=url.database)
    try:
        records = [tuple(json.dumps(row[c]) if c in ("transitions", "anomalies") else row[c] for c in COLUMNS)
                   for row in rows]
        await conn.copy_records_to_table("referrals", schema_name="outcomes", columns=COLUMNS, records=records)
    finally:
        await conn.close()


async def migrated(database_url: str, *rows: list[dict]) -> str:
    """Migrate outcomes' schema to head in database_url and insert every set of rows; the URL."""
    await db.migrate(database_url, MIGRATIONS, "outcomes")
    for some in rows:
        await insert(database_url, some)
    return database_url


# What the rows should count to, worked out in plain Python from each row's declared fate.
REASONS = ("no_violation", "insufficient_information", "content_not_found", "already_removed", "out_of_scope",
           "duplicate")


def percentile(values: list[float], fraction: float) -> float:
    """The textbook continuous percentile: linear between the two nearest ranks."""
    ordered, position = sorted(values), fraction * (len(values) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    return low + (high - low) * (position - math.floor(position))


def attrition_figures(rows: list[dict]) -> dict:
    """Every attrition figure of rows, from the fate the seed gave each: the report's expected values."""
    fates = Counter(r["fate"] for r in rows)
    hours = [(r["decided_at"] - r["submitted_at"]).total_seconds() / 3600 for r in rows
             if r["fate"] in ("removed", "restricted", "rejected")]
    checked = [r["reachable"] for r in rows if r["fate"] in ("removed", "restricted") and r["reachable"] is not None]
    reasons = Counter(r["reason"] for r in rows if r["fate"] == "rejected")
    return {"referred": len(rows), **{f: fates[f] for f in ("removed", "restricted", "rejected")},
            **{f"rejected_{reason}": reasons[reason] for reason in REASONS}, "rejected_without_reason": reasons[None],
            "pending": fates["pending"],
            "information_requested": sum(r["fate"] == "pending" and r["status"] == "information_requested"
                                         for r in rows),
            **{f: fates[f] for f in ("expired", "withdrawn", "closed_without_decision", "removed_without_reply")},
            "gone_before_reply": sum(any(t["to"] == "gone_without_reply" for t in r["transitions"]) for r in rows),
            "decisions_timed": len(hours),
            "median_hours_to_decision": round(percentile(hours, 0.5), 2) if hours else None,
            "p90_hours_to_decision": round(percentile(hours, 0.9), 2) if hours else None,
            "stays_down_checked": len(checked), "still_reachable": sum(checked),
            "share_still_reachable": round(sum(checked) / len(checked), 4) if checked else None}


def expected_attrition(rows: list[dict], by_month: bool) -> list[dict]:
    """Each platform's months and whole period, then all platforms' months and whole period."""
    report = []
    for platform in [*sorted({r["platform"] for r in rows}), None]:
        theirs = [r for r in rows if platform in (None, r["platform"])]
        months = sorted({r["submitted_at"].strftime("%Y-%m") for r in theirs}) if by_month else []
        for month in [*months, None]:
            report.append({"platform": platform or "all platforms", "month": month, **attrition_figures(
                [r for r in theirs if month in (None, r["submitted_at"].strftime("%Y-%m"))])})
    return report
