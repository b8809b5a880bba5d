"""Prompts and chat messages become token ids, or a clear invalid_input, whatever the tokenizer allows."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from core.errors import ErrorType
from core.jobs.model import GenerationInput
from core.jobs.records import JobError
from worker.generation import EngineInputError, PromptEncoder, classify_failure
from worker.stop_strings import cut_at_first_stop

MESSAGES = [{"role": "system", "content": "Ngắn gọn."}, {"role": "user", "content": "Xin chào"}]


@pytest.fixture
def tokenizer(demo_model_dir):
    return AutoTokenizer.from_pretrained(demo_model_dir / "tokenizer")


def test_chat_messages_get_exactly_one_bos_and_the_assistant_header(tokenizer):
    ids = PromptEncoder(tokenizer, 2048).encode(GenerationInput(messages=MESSAGES))
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(ids).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_tokenizer_without_chat_template_refuses_messages_clearly(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(EngineInputError, match="no chat template"):
        PromptEncoder(tokenizer, 2048).encode(GenerationInput(messages=MESSAGES))
    assert PromptEncoder(tokenizer, 2048).encode(GenerationInput(prompt="vẫn được"))


def test_template_that_rejects_a_role_is_invalid_input(tokenizer):
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{% endfor %}"
    )
    with pytest.raises(EngineInputError) as refused:
        PromptEncoder(tokenizer, 2048).encode(GenerationInput(messages=MESSAGES))
    expected = JobError(type=ErrorType.INVALID_INPUT, message=str(refused.value))
    assert classify_failure(refused.value) == (expected, False)


def test_prompt_plus_max_tokens_beyond_the_context_is_refused(tokenizer):
    with pytest.raises(EngineInputError, match="context of 16 tokens"):
        PromptEncoder(tokenizer, 16).encode(GenerationInput(prompt="Xin chào", max_tokens=15))


def test_text_is_cut_at_the_earliest_stop_string():
    assert cut_at_first_stop("một hai ba bốn", ["ba", "hai"]) == "một "
    assert cut_at_first_stop("không dừng", ["x"]) == "không dừng"
