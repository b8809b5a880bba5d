"""The stored OpenAI batch record: validated on every assignment, and read back as it was written."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.openai.batch_records import OpenAIBatch
from core.openai.protocol import Endpoint


def record() -> OpenAIBatch:
    return OpenAIBatch(
        id="batch_x",
        owner="o",
        endpoint="/v1/chat/completions",
        input_file_id="file-x",
        completion_window="24h",
        created_at=1,
        expires_at=2,
    )


def test_a_record_round_trips_through_its_json():
    made = record()
    made.final_status, made.finished_at = "completed", 3
    assert OpenAIBatch.model_validate_json(made.model_dump_json()) == made
    assert made.endpoint is Endpoint.CHAT_COMPLETIONS and made.metadata == {} and made.final is None


def test_an_assignment_is_validated():
    made = record()
    with pytest.raises(ValidationError):
        made.final_status = "failed"
    with pytest.raises(ValidationError):
        made.expired_at = "soon"
