"""Text deltas from the demo model's real tokenizer, fed one token at a time as an engine does: characters split
across byte tokens wait until whole, stop strings hold back what they may cut, and the deltas rebuild the engine's
final text exactly; the publisher writes them to a real Redis."""

from __future__ import annotations

import pytest
from tokenizers.pre_tokenizers import ByteLevel
from transformers import AutoTokenizer

from core.events.stream import TokenStreams, text_of
from core.jobs.model import JobStatus
from tests.test_token_stream import new_job, started
from worker.stop_strings import cut_at_first_stop
from worker.text_deltas import TextDeltas
from worker.token_publisher import TokenPublisher

TEXT = "Xin chào thế giới! Phở bò ngon quá. Nguyễn Thị Ánh Tuyết ờ ạ ỹ 😀 ok"


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir):
    return AutoTokenizer.from_pretrained(demo_model_dir / "tokenizer", local_files_only=True)


def byte_split_ids(tokenizer) -> list[int]:
    """The text's tokens with one Vietnamese character and the emoji as separate byte tokens, as a model may emit."""
    ids: list[int] = []
    for piece in ("Xin chào thế gi", "ớ", "i! Phở bò ngon quá. Nguyễn Thị Ánh Tuyết ờ ạ ỹ ", "😀", " ok"):
        if piece in ("ớ", "😀"):
            # The byte-level pre-tokenizer spells each byte as one symbol, and every byte is a token of its own.
            [(symbols, _)] = ByteLevel(add_prefix_space=False).pre_tokenize_str(piece)
            ids += [tokenizer.convert_tokens_to_ids(symbol) for symbol in symbols]
        else:
            ids += tokenizer(piece, add_special_tokens=False)["input_ids"]
    return ids


def streamed(tokenizer, ids: list[int], stops: list[str] | None) -> tuple[list[str], str]:
    deltas = TextDeltas(tokenizer, stops)
    out = [deltas.update(ids[:n]) for n in range(1, len(ids) + 1)]
    final = cut_at_first_stop(tokenizer.decode(ids, skip_special_tokens=True), stops or [])
    out.append(deltas.finish(final))
    return [delta for delta in out if delta], final


@pytest.mark.parametrize("stops", [None, ["ngon"], ["zz", "Ánh T"], ["😀"]])
def test_deltas_are_whole_characters_and_rebuild_the_final_text(tokenizer, stops):
    ids = byte_split_ids(tokenizer)
    assert tokenizer.decode(ids) == TEXT
    assert sum("\ufffd" in tokenizer.decode([token]) for token in ids) >= 4  # the split is real
    deltas, final = streamed(tokenizer, ids, stops)
    assert all("\ufffd" not in delta for delta in deltas), deltas
    assert "".join(deltas) == final
    for stop in stops or []:
        assert stop not in "".join(deltas)


def test_the_publisher_writes_a_jobs_deltas_before_its_finish_returns(tokenizer, store):
    publisher = TokenPublisher(TokenStreams(store.redis), tokenizer)
    job = new_job()
    store.create(job)
    store.transition(job.id, JobStatus.RUNNING, started)
    ids = byte_split_ids(tokenizer)
    feed = publisher.open(job.id, 1, ["ngon"])
    for n in range(1, len(ids) + 1):
        feed.on_tokens(ids[:n])
    feed.finish(cut_at_first_stop(TEXT, ["ngon"]))
    events = TokenStreams(store.redis).read(job.id)
    assert text_of(events) == cut_at_first_stop(TEXT, ["ngon"])
    feed.on_tokens(ids)  # after finish: nothing more for this job
    closed = publisher.open(job.id, 1, None)
    closed.close()
    closed.on_tokens(ids)
    store.transition(job.id, JobStatus.SUCCEEDED)
    assert TokenStreams(store.redis).read(job.id)[:-1] == events
