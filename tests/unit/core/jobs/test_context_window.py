"""The model's context at submit, counted with a tokenizer file the test writes: a prompt that can't fit with its
max_tokens is refused naming both; without a readable model the check steps aside for the worker's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.jobs.context_window import ContextWindow, context_length, model_files
from core.jobs.model import GenerationInput, within_limits

CONTEXT = 16


def write_model(folder: Path, config: dict, *, tokenizer: bool = True) -> Path:
    """A model folder holding only what the API reads: config.json and a one-token-per-word tokenizer.json."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if tokenizer:
        words = Tokenizer(WordLevel({"[UNK]": 0, "word": 1}, unk_token="[UNK]"))
        words.pre_tokenizer = Whitespace()
        words.save(str(folder / "tokenizer.json"))
    return folder


def params(prompt: str, max_tokens: int):
    body = {"prompt": prompt, "max_tokens": max_tokens}
    return within_limits(GenerationInput.parse(body), max_tokens_limit=64, max_prompt_chars=10_000)


@pytest.mark.parametrize(
    ("config", "length"),
    [
        ({"max_position_embeddings": 2048}, 2048),
        ({"n_positions": 1024, "max_position_embeddings": 0}, 1024),
        ({"text_config": {"seq_length": 512}}, 512),
        ({"hidden_size": 8}, None),
    ],
)
def test_the_context_length_is_read_under_whichever_name_the_config_uses(config, length):
    assert context_length(config) == length


def test_the_files_are_found_in_a_prepared_folder_or_a_plain_one(tmp_path):
    prepared = tmp_path / "prepared"
    write_model(prepared / "fp16", {"n_positions": 8}, tokenizer=False)
    write_model(prepared / "tokenizer", {})
    assert model_files(prepared) == (prepared / "fp16" / "config.json", prepared / "tokenizer" / "tokenizer.json")
    plain = write_model(tmp_path / "plain", {"n_positions": 8})
    assert model_files(plain) == (plain / "config.json", plain / "tokenizer.json")
    assert model_files(write_model(tmp_path / "no-tokenizer", {}, tokenizer=False)) is None
    assert model_files(tmp_path / "missing") is None


def test_a_prompt_that_fits_with_its_max_tokens_passes_and_one_past_is_refused(tmp_path):
    window = ContextWindow(write_model(tmp_path / "m", {"max_position_embeddings": CONTEXT}))
    window.check(params("word " * 12, 4))  # 12 + 4 = 16: exactly the context
    with pytest.raises(InvalidInput) as refused:
        window.check(params("word " * 12, 5))
    assert refused.value.field == "max_tokens"
    assert "(12 tokens) plus max_tokens (5) exceeds the model's context of 16 tokens" in refused.value.message


def test_chat_messages_are_not_counted_here(tmp_path):
    window = ContextWindow(write_model(tmp_path / "m", {"max_position_embeddings": 2}))
    body = {"messages": [{"role": "user", "content": "word " * 50}], "max_tokens": 64}
    chat = within_limits(GenerationInput.parse(body), max_tokens_limit=64, max_prompt_chars=10_000)
    window.check(chat)


def test_without_a_readable_model_the_check_steps_aside(tmp_path):
    assert ContextWindow(tmp_path / "missing").counter() is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"n_positions": 4}')
    (broken / "tokenizer.json").write_text("not a tokenizer")
    window = ContextWindow(broken)
    window.check(params("word " * 100, 64))
    assert window.counter() is None


def test_stop_token_ids_outside_the_vocabulary_are_refused_for_prompts_and_chats(tmp_path):
    window = ContextWindow(write_model(tmp_path / "m", {"max_position_embeddings": CONTEXT, "vocab_size": 100}))
    for body in ({"prompt": "word"}, {"messages": [{"role": "user", "content": "word"}]}):
        window.check(GenerationInput.parse(body | {"max_tokens": 4, "stop_token_ids": [99]}))
        bad = GenerationInput.parse(body | {"max_tokens": 4, "stop_token_ids": [3, 100]})
        with pytest.raises(InvalidInput) as refused:
            window.check(bad)
        assert refused.value.field == "stop_token_ids"
        assert refused.value.message.startswith("stop_token_ids: 100 is not a token of this model")


def test_a_prompt_of_token_ids_is_counted_as_it_is_and_ids_outside_the_vocabulary_are_refused(tmp_path):
    window = ContextWindow(write_model(tmp_path / "m", {"max_position_embeddings": CONTEXT, "vocab_size": 100}))
    window.check(GenerationInput.parse({"prompt_token_ids": [1] * 12, "max_tokens": 4}))  # exactly the context
    with pytest.raises(InvalidInput) as too_long:
        window.check(GenerationInput.parse({"prompt_token_ids": [1] * 13, "max_tokens": 4}))
    assert too_long.value.field == "max_tokens" and "(13 tokens) plus max_tokens (4)" in too_long.value.message
    with pytest.raises(InvalidInput) as outside:
        window.check(GenerationInput.parse({"prompt_token_ids": [5, 100], "max_tokens": 4}))
    assert outside.value.field == "prompt_token_ids"
    assert outside.value.message.startswith("prompt_token_ids: 100 is not a token of this model")
