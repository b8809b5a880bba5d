"""Text deltas: whole characters, nothing a stop string may still cut, concatenating to the final text."""

from __future__ import annotations

from worker.text_deltas import TextDeltas


def test_deltas_concatenate_to_the_decoded_text(loaded_model):
    tokenizer = loaded_model.tokenizer
    text = "Héllo wörld, 日本語 too"
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    deltas = TextDeltas(tokenizer, None)
    pieces = [deltas.update(tokens[:n]) for n in range(1, len(tokens) + 1)]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == tokenizer.decode(tokens, skip_special_tokens=True)


def test_with_a_stop_the_tail_waits_and_the_stop_ends_the_text(loaded_model):
    tokenizer = loaded_model.tokenizer
    tokens = tokenizer("one two three STOP four", add_special_tokens=False)["input_ids"]
    deltas = TextDeltas(tokenizer, ["STOP"])
    given = "".join(deltas.update(tokens[:n]) for n in range(1, len(tokens) + 1))
    assert given == "one two three " and deltas.stopped
    assert deltas.update(tokens) == ""


def test_finish_gives_the_rest_of_the_final_text(loaded_model):
    tokenizer = loaded_model.tokenizer
    tokens = tokenizer("abc def ghi", add_special_tokens=False)["input_ids"]
    deltas = TextDeltas(tokenizer, ["zzzz"])
    given = "".join(deltas.update(tokens[:n]) for n in range(1, len(tokens) + 1))
    final = tokenizer.decode(tokens, skip_special_tokens=True)
    assert given + deltas.finish(final) == final
    diverged = TextDeltas(tokenizer, None)
    diverged.update(tokens)
    assert diverged.finish("something else") == ""
