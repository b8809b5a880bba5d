"""Stop strings over growing token lists: seen as they appear, cut at the first one."""

from __future__ import annotations

from worker.stop_strings import StopScanner, cut_at_first_stop, tokens_up_to_stop


def test_cut_at_the_earliest_stop():
    assert cut_at_first_stop("abc END def STOP", ["STOP", "END"]) == "abc "
    assert cut_at_first_stop("nothing", ["x"]) == "nothing"


def test_the_scanner_sees_a_stop_when_the_tokens_that_end_it_arrive(loaded_model):
    tokenizer = loaded_model.tokenizer
    tokens = tokenizer("Hello world, the end is near", add_special_tokens=False)["input_ids"]
    scanner = StopScanner(tokenizer, ["end"])
    seen_at = next(n for n in range(1, len(tokens) + 1) if scanner.seen(tokens[:n]))
    assert "end" in tokenizer.decode(tokens[:seen_at]) and "end" not in tokenizer.decode(tokens[: seen_at - 1])
    assert not StopScanner(tokenizer, []).seen(tokens)


def test_tokens_up_to_the_stop_count_only_what_the_caller_gets(loaded_model):
    tokenizer = loaded_model.tokenizer
    tokens = tokenizer("alpha beta gamma delta", add_special_tokens=False)["input_ids"]
    text, count = tokens_up_to_stop(tokenizer, tokens, ["gamma"])
    assert text == "alpha beta " and tokenizer.decode(tokens[:count]).startswith("alpha beta")
    assert count < len(tokens)
    assert tokens_up_to_stop(tokenizer, tokens, ["zzz"]) == (tokenizer.decode(tokens), len(tokens))
