"""Auditors' search and exports without a database: filters, cursors, and CSV and NDJSON lines."""

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from services.outcomes import exports, queries_log, search
from services.outcomes.search import Cursor, FilterError, Filters

RID = UUID("0b6d1e36-64a3-4c35-a1d5-8a3ef0c0a7e2")


@pytest.mark.parametrize("text, expected", [
    ("2020-03-01", datetime(2020, 3, 1, tzinfo=UTC)),
    ("2020-03-01T09:30:00Z", datetime(2020, 3, 1, 9, 30, tzinfo=UTC)),
    ("2020-03-01T11:30:00+02:00", datetime(2020, 3, 1, 9, 30, tzinfo=UTC)),
    ("2020-03-01T09:30", datetime(2020, 3, 1, 9, 30, tzinfo=UTC)),
    (" 2020-03-01 ", datetime(2020, 3, 1, tzinfo=UTC)),
], ids=["a date is midnight UTC", "Z", "an offset is converted to UTC", "no offset means UTC", "spaces"])
def test_a_date_or_date_time_is_read_as_an_instant_in_utc(text, expected):
    parsed = search.parse_instant("submitted_from", text)

    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["yesterday", "2020-13-01", "01/03/2020", ""])
def test_a_time_that_is_not_iso_8601_is_refused_naming_its_parameter(text):
    with pytest.raises(FilterError) as caught:
        search.parse_instant("decided_to", text)

    assert caught.value.param == "decided_to" and repr(text) in caught.value.message


def test_filters_keep_the_values_given_and_read_their_periods_in_utc():
    filters = search.parse_filters(agency="NCA", submitted_from="2020-01-01", submitted_to="2020-06-01",
                                   decided_from="2020-02-01T12:00:00+01:00", url_prefix="https://x.com/i/")

    assert filters == Filters(agency="NCA", submitted_from=datetime(2020, 1, 1, tzinfo=UTC),
                              submitted_to=datetime(2020, 6, 1, tzinfo=UTC),
                              decided_from=datetime(2020, 2, 1, 11, tzinfo=UTC), url_prefix="https://x.com/i/")


@pytest.mark.parametrize("params, param", [
    ({"submitted_from": "2020-06-01", "submitted_to": "2020-01-01"}, "submitted_to"),
    ({"decided_from": "2020-06-01", "decided_to": "2020-06-01"}, "decided_to"),
    ({"url_prefix": "true"}, "url_prefix"),
    ({"submitted_to": "soon"}, "submitted_to"),
], ids=["a period that ends before it starts", "an empty period", "a url_prefix that is not a URL",
        "an unreadable time"])
def test_filters_that_cannot_be_used_are_refused_naming_the_parameter(params, param):
    with pytest.raises(FilterError) as caught:
        search.parse_filters(**params)

    assert caught.value.param == param


@pytest.mark.parametrize("cursor", [Cursor(datetime(2020, 3, 1, 9, 0, 0, 1, tzinfo=UTC), RID), Cursor(None, RID)],
                         ids=["after a submitted referral", "among referrals without a submission"])
def test_a_cursor_decodes_to_the_position_it_was_made_from(cursor):
    encoded = search.encode_cursor({"submitted_at": cursor.submitted_at, "referral_id": cursor.referral_id})

    assert search.decode_cursor(encoded) == cursor
    assert encoded.isascii() and "=" not in encoded


def test_a_cursor_keeps_the_instant_whatever_the_offset_of_the_time_it_was_made_from():
    local = datetime(2020, 3, 1, 11, tzinfo=timezone(timedelta(hours=2)))

    decoded = search.decode_cursor(search.encode_cursor({"submitted_at": local, "referral_id": RID}))

    assert decoded.submitted_at == local and decoded.submitted_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("cursor", [
    "not-a-cursor", "", base64.urlsafe_b64encode(b"not|a").decode(), queries_log.encode_cursor(42),
    search.encode_cursor({"submitted_at": None, "referral_id": RID})[:-3],
    base64.urlsafe_b64encode(f"r1|2020-03-01T09:00:00|{RID}".encode()).decode(),
    base64.urlsafe_b64encode(f"r2|-|{RID}".encode()).decode(),
], ids=["garbage", "empty", "base64 of something else", "a cursor of the query log", "truncated",
        "a time without an offset", "another version"])
def test_a_cursor_this_api_did_not_issue_is_refused_naming_cursor(cursor):
    with pytest.raises(FilterError) as caught:
        search.decode_cursor(cursor)

    assert caught.value.param == "cursor"


def test_a_query_log_cursor_decodes_to_its_id_and_refuses_a_search_cursor():
    assert queries_log.decode_cursor(queries_log.encode_cursor(1234)) == 1234
    with pytest.raises(FilterError):
        queries_log.decode_cursor(search.encode_cursor({"submitted_at": None, "referral_id": RID}))


def test_a_search_is_ordered_by_submission_time_with_unsubmitted_referrals_last_then_by_id():
    sql = str(search.statement(Filters(platform="x")).compile()).replace("\n", " ")

    assert sql.endswith("ORDER BY outcomes.referrals.submitted_at ASC NULLS LAST, outcomes.referrals.referral_id ASC")


def test_csv_fields_are_iso_8601_utc_times_true_false_and_empty_for_null():
    local = datetime(2020, 3, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))

    assert [exports.cell(v) for v in (local, True, False, None, 7, RID, "text")] == [
        "2020-03-01T09:30:00+00:00", "true", "false", "", "7", str(RID), "text"]


def test_csv_quotes_commas_quotes_and_line_breaks_so_every_field_reads_back_as_it_was():
    awkward = ['EP/ALPHA, "north"', "line one\nline two", "1=1+1", "Ü – ü", ""]

    text = exports.csv_text([("a", "b", "c", "d", "e"), awkward])

    assert text.startswith("a,b,c,d,e\r\n") and text.endswith("\r\n")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["a", "b", "c", "d", "e"], awkward]
    assert '"EP/ALPHA, ""north"""' in text


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://evil.example\")", "'=HYPERLINK(\"http://evil.example\")"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("OP-7 =1", "OP-7 =1"), ("https://x.example/?a=-1", "https://x.example/?a=-1"), ("", ""),
    (-3, "-3"), (-0.5, "-0.5"), (datetime(2020, 3, 1, 9, tzinfo=UTC), "2020-03-01T09:00:00+00:00"),
], ids=["equals", "plus", "minus", "at", "tab", "carriage-return", "later-equals", "url", "empty",
        "negative-int", "negative-float", "timestamp"])
def test_csv_text_a_spreadsheet_would_run_as_a_formula_is_written_after_a_single_quote(value, written):
    assert exports.cell(value) == written
    assert list(csv.reader(io.StringIO(exports.csv_text([[value]]), newline=""))) == [[written]]


def test_an_ndjson_line_is_one_line_of_json_with_iso_times_and_text_unescaped():
    rid, at = uuid4(), datetime(2020, 3, 1, 9, tzinfo=UTC)
    row = {"referral_id": rid, "decided_at": at, "case_reference": "a\nb – Ü", "reachable": None,
           "transitions": [{"to": "submitted", "at": at.isoformat()}]}

    line = exports.ndjson_line(row)

    assert line.endswith("\n") and line.count("\n") == 1 and "Ü" in line
    assert json.loads(line) == {"referral_id": str(rid), "decided_at": "2020-03-01T09:00:00+00:00",
                                "case_reference": "a\nb – Ü", "reachable": None,
                                "transitions": [{"to": "submitted", "at": "2020-03-01T09:00:00+00:00"}]}


def test_the_csv_export_has_the_state_columns_and_the_ndjson_export_adds_transitions_and_anomalies():
    assert exports.CSV_COLUMNS[0] == "referral_id" and "transitions" not in exports.CSV_COLUMNS
    assert exports.NDJSON_COLUMNS == (*exports.CSV_COLUMNS, "transitions", "anomalies")


def test_query_parameters_are_recorded_as_sent_with_a_repeated_one_as_a_list():
    params = queries_log.query_params([("platform", "x"), ("from", "2020-01-01"), ("platform", "youtube")])

    assert params == {"platform": ["x", "youtube"], "from": "2020-01-01"}
