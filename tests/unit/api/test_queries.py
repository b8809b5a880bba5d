"""The query-string models: what each accepts, and the field and words of what each refuses."""

from __future__ import annotations

import pytest
from flask import Flask

from api.queries import (
    MAX_PAGE_SIZE,
    BatchQuery,
    EventsQuery,
    JobPageQuery,
    MetricsHistoryQuery,
    OpenAIFileQuery,
    OpenAIPageQuery,
    PageQuery,
    Query,
    ResultsQuery,
)
from core.errors import InvalidInput
from core.jobs.model import JobStatus

APP = Flask(__name__)


def read(model: type[Query], query: str = "", headers: dict[str, str] | None = None) -> Query:
    with APP.test_request_context(f"/?{query}", headers=headers or {}):
        return model.read()


def refused(model: type[Query], query: str, headers: dict[str, str] | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read(model, query, headers)
    return caught.value


def test_a_page_defaults_to_twenty_from_the_start():
    page = read(PageQuery)
    assert (page.limit, page.cursor, page.before_sequence) == (20, "", None)


def test_a_cursor_is_the_sequence_to_list_before():
    assert read(PageQuery, "limit=100&cursor=41").before_sequence == 41


@pytest.mark.parametrize("limit", ["0", str(MAX_PAGE_SIZE + 1), "999"])
def test_a_page_size_out_of_range_is_refused_by_name(limit):
    problem = refused(PageQuery, f"limit={limit}")
    assert problem.field == "limit" and problem.message == f"limit: must be between 1 and {MAX_PAGE_SIZE}"


@pytest.mark.parametrize("limit", ["x", "-1", "1.5", "", "0x10", "1000"])
def test_a_page_size_that_is_no_whole_number_is_refused(limit):
    assert refused(PageQuery, f"limit={limit}").message == "limit: must be a whole number"


def test_a_bad_cursor_is_told_in_the_services_words():
    problem = refused(PageQuery, "cursor=abc")
    assert problem.field == "cursor" and problem.message == "cursor: must be a page's next_cursor (a whole number)"


def test_a_limit_that_is_no_number_is_told_before_a_bad_cursor():
    assert refused(PageQuery, "limit=x&cursor=abc").field == "limit"


def test_a_job_page_filters_by_status_and_tells_a_bad_one_first():
    assert read(JobPageQuery, "status=running").status is JobStatus.RUNNING
    problem = refused(JobPageQuery, "limit=x&cursor=abc&status=lost")
    assert problem.field == "status" and problem.message.startswith("status: must be one of queued")


def test_results_are_native_or_openai():
    assert read(ResultsQuery).format == "native" and read(ResultsQuery, "format=openai").format == "openai"
    assert refused(ResultsQuery, "format=csv").message == "format: must be native or openai"


def test_openai_pages_take_an_id_of_their_kind_after():
    assert read(OpenAIPageQuery, "after=batch_" + "a" * 32).after == "batch_" + "a" * 32
    assert refused(OpenAIPageQuery, "after=file-" + "a" * 32).message == "after: must be the id of one of your batches"
    problem = refused(OpenAIPageQuery, "limit=0")
    assert problem.message == f"limit: must be a whole number between 1 and {MAX_PAGE_SIZE}"


def test_openai_file_pages_filter_by_purpose_newest_first_only():
    files = read(OpenAIFileQuery, "purpose=batch_output&after=file-" + "0" * 32)
    assert (files.purpose, files.order, files.limit) == ("batch_output", "desc", 20)
    assert refused(OpenAIFileQuery, "purpose=fine-tune").message == "purpose: must be batch or batch_output"
    assert refused(OpenAIFileQuery, "order=asc").message == "order: only desc (newest first) is served"


def test_a_batch_takes_its_webhook_as_given():
    assert read(BatchQuery).webhook is None
    assert read(BatchQuery, "webhook=https://example.com/h").webhook == "https://example.com/h"


def test_the_last_event_id_header_wins_over_the_parameter():
    assert read(EventsQuery).last_event_id == ""
    assert read(EventsQuery, "last_event_id=5-1").last_event_id == "5-1"
    assert read(EventsQuery, "last_event_id=5-1", {"Last-Event-ID": "7-0"}).last_event_id == "7-0"
    # The header wins even over a bad parameter, which is then never read.
    assert read(EventsQuery, "last_event_id=nope", {"Last-Event-ID": "7"}).last_event_id == "7"


@pytest.mark.parametrize(("query", "headers"), [("last_event_id=nope", None), ("", {"Last-Event-ID": "1-2-3"})])
def test_a_bad_last_event_id_names_the_parameter_whichever_way_it_came(query, headers):
    problem = refused(EventsQuery, query, headers)
    assert problem.field == "last_event_id"
    assert problem.message == "last event id: must be an event's id (`<milliseconds>-<sequence>`)"


def test_since_is_a_plain_unix_time():
    assert read(MetricsHistoryQuery).since == 0
    assert read(MetricsHistoryQuery, "since=1718000000.25").since == 1718000000.25
    assert read(MetricsHistoryQuery, "since=1e3").since == 1000.0


@pytest.mark.parametrize("since", ["inf", "nan", "-1", "1_000", "x", "", "1e400"])
def test_since_that_is_no_plain_time_is_refused(since):
    problem = refused(MetricsHistoryQuery, f"since={since}")
    assert problem.field == "since" and problem.message == "since: must be a Unix time in seconds (a number, 0 or more)"


def test_a_repeated_parameter_counts_once_and_unknown_ones_are_ignored():
    assert read(PageQuery, "limit=5&limit=500&colour=blue").limit == 5
