"""Auditors' reports without a database: how aggregate rows become report rows, JSON and CSV."""

import csv
import io
from datetime import UTC, datetime

import pytest

from services.outcomes import reports
from services.outcomes.reports import ATTRITION_COLUMNS, Scope

ZERO = {c: 0 for c in ATTRITION_COLUMNS} | {"median_hours_to_decision": None, "p90_hours_to_decision": None}


def aggregate(platform: str | None, month: str | None, all_platforms: int, all_months: int, **figures) -> dict:
    """A row as the attrition SQL returns it."""
    return ZERO | {"platform": platform, "month": month, "all_platforms": all_platforms, "all_months": all_months,
                   **figures}


@pytest.mark.parametrize("part, whole, expected", [(1, 4, 0.25), (2, 3, 0.6667), (0, 5, 0.0), (0, 0, None)],
                         ids=["a quarter", "rounded to four places", "none of them", "nothing checked"])
def test_a_share_is_rounded_to_four_places_and_none_when_nothing_was_counted(part, whole, expected):
    assert reports.share(part, whole) == expected


def test_hours_are_rounded_to_the_hundredth_and_none_stays_none():
    assert (reports.hours_or_none(9.104999), reports.hours_or_none(96.0), reports.hours_or_none(None)) == \
        (9.1, 96.0, None)


def test_an_aggregate_row_gets_its_platform_its_month_its_rounded_hours_and_its_share():
    row = reports.attrition_row(aggregate("youtube", "2020-03", 0, 0, referred=10, removed=4, decisions_timed=4,
                                          median_hours_to_decision=12.333333, p90_hours_to_decision=40.0,
                                          stays_down_checked=3, still_reachable=1))

    assert (row.platform, row.month, row.referred, row.removed) == ("youtube", "2020-03", 10, 4)
    assert (row.median_hours_to_decision, row.p90_hours_to_decision) == (12.33, 40.0)
    assert (row.stays_down_checked, row.still_reachable, row.share_still_reachable) == (3, 1, 0.3333)


def test_content_gone_before_a_reply_is_a_fate_of_its_own_and_a_figure_that_also_counts_those_decided_later():
    row = reports.attrition_row(aggregate("x", None, 0, 1, referred=5, rejected=1, pending=1,
                                          removed_without_reply=3, gone_before_reply=4))

    assert (row.removed_without_reply, row.gone_before_reply, row.rejected) == (3, 4, 1)
    columns = list(ATTRITION_COLUMNS)
    assert columns.index("closed_without_decision") + 1 == columns.index("removed_without_reply")
    assert columns.index("removed_without_reply") + 1 == columns.index("gone_before_reply")


def test_the_total_row_is_labelled_all_platforms_and_covers_the_whole_period():
    row = reports.attrition_row(aggregate(None, None, 1, 1, referred=3))

    assert (row.platform, row.month, row.share_still_reachable) == (reports.ALL_PLATFORMS, None, None)


def test_the_attrition_csv_has_a_header_of_every_figure_and_one_line_a_row_with_empty_for_none():
    rows = [reports.attrition_row(aggregate("x", None, 0, 1, referred=2, pending=2)),
            reports.attrition_row(aggregate(None, None, 1, 1, referred=2, pending=2))]

    lines = list(csv.DictReader(io.StringIO(reports.attrition_csv(rows), newline="")))

    assert list(lines[0]) == list(ATTRITION_COLUMNS)
    assert [(x["platform"], x["month"], x["referred"], x["pending"], x["median_hours_to_decision"]) for x in lines] \
        == [("x", "", "2", "2", ""), ("all platforms", "", "2", "2", "")]


def grouping_sets_rows() -> list[dict]:
    """What the Art. 22 GROUPING SETS query returns for 3 notices to facebook and 1 to x."""
    def row(p, c, a, n, gp=0, gc=0, ga=0):
        return {"platform": p, "category": c, "action": a, "notices": n, "gp": gp, "gc": gc, "ga": ga}

    return [row("facebook", "fraud", "removed", 2), row("facebook", "terrorism", "pending", 1),
            row("x", "terrorism", "rejected", 1),
            row("facebook", None, None, 3, 0, 1, 1), row("x", None, None, 1, 0, 1, 1),
            row(None, "fraud", None, 2, 1, 0, 1), row(None, "terrorism", None, 2, 1, 0, 1),
            row(None, None, "pending", 1, 1, 1, 0), row(None, None, "rejected", 1, 1, 1, 0),
            row(None, None, "removed", 2, 1, 1, 0), row(None, None, None, 4, 1, 1, 1)]


def test_the_article_22_report_splits_the_detail_rows_from_the_totals_by_each_dimension():
    scope = Scope(datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC), "NCA")

    report = reports.article_22_report(grouping_sets_rows(), scope, not_delivered=5)

    assert [(r.platform, r.category, r.action, r.notices) for r in report.rows] == [
        ("facebook", "fraud", "removed", 2), ("facebook", "terrorism", "pending", 1), ("x", "terrorism", "rejected", 1)]
    assert report.by_platform == {"facebook": 3, "x": 1}
    assert report.by_category == {"fraud": 2, "terrorism": 2}
    assert report.by_action == {"removed": 2, "restricted": 0, "rejected": 1, "pending": 1}
    assert (report.notices, report.not_delivered, report.agency) == (4, 5, "NCA")


def test_the_article_22_csv_is_a_flat_list_with_all_in_the_dimensions_a_total_sums_over():
    report = reports.article_22_report(grouping_sets_rows(), Scope(), not_delivered=0)

    lines = list(csv.reader(io.StringIO(reports.article_22_csv(report), newline="")))

    assert lines[0] == ["platform", "category", "action", "notices"]
    assert lines[1:4] == [["facebook", "fraud", "removed", "2"], ["facebook", "terrorism", "pending", "1"],
                          ["x", "terrorism", "rejected", "1"]]
    assert ["facebook", "all", "all", "3"] in lines and ["all", "terrorism", "all", "2"] in lines
    assert ["all", "all", "restricted", "0"] in lines and lines[-1] == ["all", "all", "all", "4"]
