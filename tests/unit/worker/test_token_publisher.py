"""The token publisher: each running job's text deltas written from one thread, all of it before the outcome."""

from __future__ import annotations

import threading

import redis

from worker.token_publisher import TokenPublisher


class RecordingStreams:
    """TokenStreams' writing side: keeps what would be appended, and can refuse like a Redis that is away."""

    def __init__(self) -> None:
        self.appended: list[dict] = []
        self.refuse = False
        self.lock = threading.Lock()

    def append_texts(self, deltas) -> None:
        if self.refuse:
            raise redis.ConnectionError("away")
        with self.lock:
            self.appended.append(dict(deltas))

    def text_of(self, job_id: str, attempt: int) -> str:
        return "".join(batch.get((job_id, attempt), "") for batch in self.appended)


def tokens_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_a_finished_feed_has_written_exactly_the_final_text(loaded_model):
    streams = RecordingStreams()
    publisher = TokenPublisher(streams, loaded_model.tokenizer)
    tokens = tokens_of(loaded_model.tokenizer, "The quick brown fox jumps")
    feed = publisher.open("job-a", 1, None)
    for n in range(1, len(tokens) + 1):
        feed.on_tokens(tokens[:n])
    final = loaded_model.tokenizer.decode(tokens, skip_special_tokens=True)
    feed.finish(final)
    assert streams.text_of("job-a", 1) == final


def test_deltas_kept_while_redis_is_away_are_written_once_it_is_back(loaded_model):
    streams = RecordingStreams()
    streams.refuse = True
    publisher = TokenPublisher(streams, loaded_model.tokenizer)
    tokens = tokens_of(loaded_model.tokenizer, "kept for later")
    feed = publisher.open("job-b", 2, None)
    feed.on_tokens(tokens)
    threading.Event().wait(0.2)
    streams.refuse = False
    final = loaded_model.tokenizer.decode(tokens, skip_special_tokens=True)
    feed.finish(final)
    assert streams.text_of("job-b", 2) == final


def test_a_closed_feed_publishes_nothing_more(loaded_model):
    streams = RecordingStreams()
    publisher = TokenPublisher(streams, loaded_model.tokenizer)
    feed = publisher.open("job-c", 1, None)
    feed.close()
    feed.on_tokens(tokens_of(loaded_model.tokenizer, "never"))
    feed.finish("never")
    assert streams.text_of("job-c", 1) == ""


def test_a_feed_with_logprobs_writes_each_tokens_record_with_its_text_and_the_rest_at_the_end(loaded_model):
    from worker.logprobs import as_records

    tokenizer = loaded_model.tokenizer
    streams = RecordingStreams()
    publisher = TokenPublisher(streams, tokenizer)
    tokens = tokens_of(tokenizer, "The quick brown fox")
    entries = [(token, -1.0 - i, [(token, -1.0 - i)]) for i, token in enumerate(tokens)]
    feed = publisher.open("job-l", 1, None)
    for n in range(1, len(tokens) + 1):
        feed.on_logprobs(entries[: n - 1])  # as in the batch: a token's logprob may be known only a step later
        feed.on_tokens(tokens[:n])
        threading.Event().wait(0.08)  # one write per step
    final = tokenizer.decode(tokens, skip_special_tokens=True)
    feed.finish(final, as_records(tokenizer, entries, tokens))
    written = [batch[("job-l", 1)] for batch in streams.appended if ("job-l", 1) in batch]
    with_records = [delta for delta in written if not isinstance(delta, str)]
    assert "".join(delta if isinstance(delta, str) else delta[0] for delta in written) == final
    assert [record["token_id"] for _, records in with_records for record in records] == tokens
    assert len(with_records) > 1  # they rode with the text as it was written, not only at the end
