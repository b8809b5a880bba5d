"""Stop strings found by decoding only a tail window, and the tokens a stopped job is charged for."""

from __future__ import annotations

import pytest

from scripts.make_demo_model import train_tokenizer
from worker.stop_strings import StopScanner, tokens_up_to_stop


class CountingTokenizer:
    """The real demo tokenizer, counting how many tokens each decode is given."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.decoded_lengths: list[int] = []

    def decode(self, ids, **kwargs) -> str:
        self.decoded_lengths.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def stream(scanner: StopScanner, ids: list[int]) -> int | None:
    """Feed the ids one token at a time, as a streaming engine does; the length at which a stop was seen."""
    for length in range(1, len(ids) + 1):
        if scanner.seen(ids[:length]):
            return length
    return None


def test_a_stop_string_is_found_in_the_token_that_completes_it(tokenizer):
    text = "Hà Nội là thủ đô. Câu hỏi tiếp theo: Huế thì sao?"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    found_at = stream(StopScanner(tokenizer, ["Câu hỏi"]), ids)
    assert found_at is not None
    assert "Câu hỏi" in tokenizer.decode(ids[:found_at]) and "Câu hỏi" not in tokenizer.decode(ids[: found_at - 1])
    assert stream(StopScanner(tokenizer, ["không có"]), ids) is None


def test_each_check_decodes_a_window_that_does_not_grow_with_the_text(tokenizer):
    counting = CountingTokenizer(tokenizer)
    ids = tokenizer("Một đoạn văn dài về phở và bún chả. " * 80, add_special_tokens=False)["input_ids"]
    scanner = StopScanner(counting, ["###"])
    assert stream(scanner, ids) is None
    assert len(ids) > 500
    assert max(counting.decoded_lengths) <= scanner.window_tokens + 1


def test_a_stopped_job_is_charged_only_the_tokens_of_the_text_it_gets(tokenizer):
    delivered = "Xin chào các bạn, hôm nay trời đẹp"
    ids = tokenizer(delivered + "STOP và còn nhiều chữ nữa sau đó", add_special_tokens=False)["input_ids"]
    text, count = tokens_up_to_stop(tokenizer, ids, ["STOP"])
    assert text == delivered
    assert tokenizer.decode(ids[:count]).startswith(delivered)
    assert count < len(ids) - 5
    assert tokens_up_to_stop(tokenizer, ids, ["vắng mặt"]) == (tokenizer.decode(ids), len(ids))
