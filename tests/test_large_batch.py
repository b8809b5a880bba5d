"""A 50,000-line batch is accepted, canceled, and its results stream out without the API's memory growing."""

from __future__ import annotations

from bench.large_batch import LINES, measure_large_batch


def test_fifty_thousand_lines_are_accepted_canceled_and_streamed_in_bounded_memory(own_redis):
    # A Redis of its own: the session's reconciler would publish lines queued past STALE_QUEUED_SECONDS to the
    # session worker's queue.
    figures = measure_large_batch(own_redis.url)
    print(figures.markdown())
    assert figures.result_lines == LINES and figures.in_order
    assert figures.statuses == {"canceled": LINES}  # no worker reads this queue: every line was still queued
    # Streaming reads 500 jobs at a time: the API's memory must not grow with the 50,000 lines it sends.
    assert figures.rss_stream_peak_mb - figures.rss_after_submit_mb < 64
