"""Auditors' reports: attrition per platform (and month) and the DSA Art. 22(3) notice counts.

Both count referrals whose submission is recorded (submitted_at set) and fell in [from, to). Every
figure is one SQL aggregate over outcomes.referrals; docs/auditors.md defines each of them.
Content a liveness check found gone before the platform replied is counted apart, as "removed
without a reply", unless the platform decided later: then under its decision, and in
gone_before_reply either way.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.outcomes.exports import csv_text
from services.outcomes.search import referrals
from shared.events import NoActionReason, Outcome

ALL_PLATFORMS = "all platforms"
ALL = "all"
GONE = "gone_without_reply"  # the status content.gone_without_reply moves a referral to
ACTIONS = ("removed", "restricted", "rejected", "pending")
GroupBy = Literal["platform", "month"]


@dataclass(frozen=True)
class Scope:
    """Which referrals a report counts: submitted in [start, end), optionally of one agency or platform."""

    start: datetime | None = None
    end: datetime | None = None
    agency: str | None = None
    platform: str | None = None

    def conditions(self) -> list:
        """The WHERE conditions selecting the referrals in scope."""
        r = referrals.c
        found = [r.submitted_at.is_not(None)]
        if self.start is not None:
            found.append(r.submitted_at >= self.start)
        if self.end is not None:
            found.append(r.submitted_at < self.end)
        if self.agency is not None:
            found.append(r.agency == self.agency)
        if self.platform is not None:
            found.append(r.platform == self.platform)
        return found


class AttritionRow(BaseModel):
    platform: str = Field(description=f"A platform, or '{ALL_PLATFORMS}' for the total.")
    month: str | None = Field(None, description="YYYY-MM of submission (UTC); null for the whole period.")
    referred: int
    removed: int
    restricted: int
    rejected: int
    rejected_no_violation: int
    rejected_insufficient_information: int
    rejected_content_not_found: int
    rejected_already_removed: int
    rejected_out_of_scope: int
    rejected_duplicate: int
    rejected_without_reason: int
    pending: int
    information_requested: int = Field(description="Of pending: waiting for information the platform asked for.")
    expired: int
    withdrawn: int
    closed_without_decision: int
    removed_without_reply: int = Field(
        description="Content found gone before the platform replied, and no decision since.")
    gone_before_reply: int = Field(
        description="Content found gone before the platform replied, whatever came next: removed_without_reply "
                    "and those the platform decided on later (counted under its decision).")
    decisions_timed: int = Field(description="Decided referrals the times below are computed over.")
    median_hours_to_decision: float | None
    p90_hours_to_decision: float | None
    stays_down_checked: int
    still_reachable: int
    share_still_reachable: float | None = Field(description="still_reachable / stays_down_checked.")


ATTRITION_COLUMNS = tuple(AttritionRow.model_fields)


def ever(status: str):
    """Whether a referral is, or ever was, in status (per its transitions)."""
    r = referrals.c
    return or_(r.status == status, r.transitions.contains([{"to": status}]))


def fate():
    """Where a referral ended up: its latest decision's outcome, or why it has none."""
    r = referrals.c
    return case((r.outcome.is_not(None), r.outcome), (ever(GONE), "removed_without_reply"),
                (ever("withdrawn"), "withdrawn"), (ever("expired"), "expired"),
                (r.status == "closed", "closed_without_decision"), else_="pending")


def hours_or_none(value: float | None) -> float | None:
    """Hours rounded to 0.01 (36 seconds); None stays None."""
    return None if value is None else round(value, 2)


def share(part: int, whole: int) -> float | None:
    """part / whole rounded to 4 places; None when whole is 0."""
    return round(part / whole, 4) if whole else None


def attrition_statement(scope: Scope, group_by: GroupBy):
    """The attrition aggregate: a row per platform (and month), then the totals, in report order."""
    r = referrals.c
    decided = and_(r.outcome.is_not(None), r.decided_at.is_not(None))
    hours = case((decided, func.extract("epoch", r.decided_at - r.submitted_at) / 3600))
    month = func.to_char(func.date_trunc("month", func.timezone("UTC", r.submitted_at)), "YYYY-MM")
    base = select(r.platform, month.label("month"), fate().label("fate"), r.reason, r.status, r.reachable,
                  hours.label("hours"), ever(GONE).label("gone")).where(*scope.conditions()).subquery()
    b = base.c
    kept = b.fate.in_([Outcome.removed.value, Outcome.restricted.value])
    figures = [
        func.count().label("referred"),
        *(func.count().filter(b.fate == o.value).label(o.value) for o in Outcome),
        *(func.count().filter(and_(b.fate == "rejected", b.reason == n.value)).label(f"rejected_{n.value}")
          for n in NoActionReason),
        func.count().filter(and_(b.fate == "rejected", b.reason.is_(None))).label("rejected_without_reason"),
        *(func.count().filter(b.fate == f).label(f) for f in ("pending", "expired", "withdrawn",
                                                                "closed_without_decision", "removed_without_reply")),
        func.count().filter(b.gone).label("gone_before_reply"),
        func.count().filter(and_(b.fate == "pending", b.status == "information_requested"))
        .label("information_requested"),
        func.count(b.hours).label("decisions_timed"),
        func.percentile_cont(0.5).within_group(b.hours).label("median_hours_to_decision"),
        func.percentile_cont(0.9).within_group(b.hours).label("p90_hours_to_decision"),
        func.count().filter(and_(kept, b.reachable.is_not(None))).label("stays_down_checked"),
        func.count().filter(and_(kept, b.reachable.is_(True))).label("still_reachable"),
    ]
    if group_by == "month":
        keys, grouping = [b.platform, b.month], func.cube(b.platform, b.month)
    else:
        keys, grouping = [b.platform, literal(None).label("month")], func.rollup(b.platform)
    flags = [func.grouping(b.platform).label("all_platforms"),
             (func.grouping(b.month) if group_by == "month" else literal(1)).label("all_months")]
    return (select(*keys, *flags, *figures).group_by(grouping)
            .order_by(flags[0], b.platform, flags[1], keys[1]))


def attrition_row(row: dict) -> AttritionRow:
    """An aggregate row as the report shows it: totals labelled, hours rounded, the share computed."""
    values = {k: v for k, v in row.items() if k in ATTRITION_COLUMNS}
    values.update(
        platform=ALL_PLATFORMS if row["all_platforms"] else row["platform"],
        month=None if row["all_months"] else row["month"],
        median_hours_to_decision=hours_or_none(row["median_hours_to_decision"]),
        p90_hours_to_decision=hours_or_none(row["p90_hours_to_decision"]),
        share_still_reachable=share(row["still_reachable"], row["stays_down_checked"]))
    return AttritionRow(**values)


async def attrition(session: AsyncSession, scope: Scope, group_by: GroupBy = "platform") -> list[AttritionRow]:
    """The attrition report's rows: per platform (and month), each platform's total, all platforms."""
    result = await session.execute(attrition_statement(scope, group_by))
    return [attrition_row(dict(row)) for row in result.mappings()]


def attrition_csv(rows: list[AttritionRow]) -> str:
    """The attrition report as CSV, one line per row, in ATTRITION_COLUMNS order."""
    return csv_text([ATTRITION_COLUMNS, *([getattr(row, c) for c in ATTRITION_COLUMNS] for row in rows)])


class NoticeCount(BaseModel):
    platform: str = Field(description=f"The provider, or '{ALL}' in a total.")
    category: str = Field(description=f"The type of alleged illegal content, or '{ALL}' in a total.")
    action: str = Field(description=f"removed, restricted, rejected or pending, or '{ALL}' in a total.")
    notices: int


class Article22Report(BaseModel):
    start: datetime | None = Field(None, description="Submitted on or after (UTC); null: since the beginning.")
    end: datetime | None = Field(None, description="Submitted before (UTC); null: up to now.")
    agency: str | None = None
    notices: int = Field(description="Notices delivered to a provider in the period.")
    rows: list[NoticeCount] = Field(description="One row per provider, type and action that occurred.")
    by_platform: dict[str, int]
    by_category: dict[str, int]
    by_action: dict[str, int] = Field(description="Every action, zero included.")
    not_delivered: int = Field(description="Referrals in the period never delivered: not notices, not above.")


def delivered():
    """A referral the platform received: it was dispatched, or the platform decided on it."""
    return or_(referrals.c.dispatched_at.is_not(None), referrals.c.decided_at.is_not(None))


def article_22_statement(scope: Scope):
    """Notices per (provider, type, action), per each of them alone, and in all: GROUPING SETS."""
    r = referrals.c
    action = case((r.outcome.in_([o.value for o in Outcome]), r.outcome), else_="pending")
    base = select(r.platform, r.category, action.label("action")).where(*scope.conditions(), delivered()).subquery()
    p, c, a = base.c.platform, base.c.category, base.c.action
    sets = func.grouping_sets(tuple_(p, c, a), tuple_(p), tuple_(c), tuple_(a), tuple_())
    return (select(p, c, a, func.count().label("notices"), func.grouping(p).label("gp"),
                   func.grouping(c).label("gc"), func.grouping(a).label("ga"))
            .group_by(sets).order_by("gp", "gc", "ga", p, c, a))


def article_22_report(rows: list[dict], scope: Scope, not_delivered: int) -> Article22Report:
    """The report from the GROUPING SETS rows: the detail rows, then totals by each dimension."""
    detail = [NoticeCount(platform=x["platform"], category=x["category"], action=x["action"], notices=x["notices"])
              for x in rows if not (x["gp"] or x["gc"] or x["ga"])]
    only = {"platform": (0, 1, 1), "category": (1, 0, 1), "action": (1, 1, 0)}
    totals = {name: {x[name]: x["notices"] for x in rows if (x["gp"], x["gc"], x["ga"]) == flags}
              for name, flags in only.items()}
    everything = sum(x["notices"] for x in rows if (x["gp"], x["gc"], x["ga"]) == (1, 1, 1))
    return Article22Report(start=scope.start, end=scope.end, agency=scope.agency, notices=everything, rows=detail,
                           by_platform=totals["platform"], by_category=totals["category"],
                           by_action={a: totals["action"].get(a, 0) for a in ACTIONS}, not_delivered=not_delivered)


async def article_22(session: AsyncSession, scope: Scope) -> Article22Report:
    """The DSA Art. 22(3) counts of notices in scope, by provider, type of content and action taken."""
    rows = [dict(x) for x in (await session.execute(article_22_statement(scope))).mappings()]
    undelivered = select(func.count()).select_from(referrals).where(*scope.conditions(), ~delivered())
    return article_22_report(rows, scope, (await session.execute(undelivered)).scalar_one())


def article_22_csv(report: Article22Report) -> str:
    """The flat list as CSV: the detail rows, then totals with 'all' in the dimensions summed over."""
    totals = [*((p, ALL, ALL, n) for p, n in report.by_platform.items()),
              *((ALL, c, ALL, n) for c, n in report.by_category.items()),
              *((ALL, ALL, a, n) for a, n in report.by_action.items()), (ALL, ALL, ALL, report.notices)]
    return csv_text([("platform", "category", "action", "notices"),
                     *((x.platform, x.category, x.action, x.notices) for x in report.rows), *totals])
