"""OpenAI's batch shapes: the create body as the official client sends it (strict, the endpoint by its URL, the
output lifetime bounded), and the list of batch objects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.openai.batch_protocol import MAX_OUTPUT_TTL_S, MIN_OUTPUT_TTL_S, CreateOpenAIBatch, OpenAIBatchList
from core.openai.protocol import Endpoint

BODY = {"input_file_id": "file-x", "endpoint": "/v1/completions", "completion_window": "24h"}


def test_the_create_body_names_its_endpoint_by_url_and_bounds_the_output_lifetime():
    request = CreateOpenAIBatch.model_validate(
        BODY | {"output_expires_after": {"anchor": "created_at", "seconds": MIN_OUTPUT_TTL_S}}
    )
    assert request.endpoint is Endpoint.COMPLETIONS and request.output_expires_after.seconds == MIN_OUTPUT_TTL_S
    for seconds in (MIN_OUTPUT_TTL_S - 1, MAX_OUTPUT_TTL_S + 1):
        with pytest.raises(ValidationError):
            CreateOpenAIBatch.model_validate(
                BODY | {"output_expires_after": {"anchor": "created_at", "seconds": seconds}}
            )


@pytest.mark.parametrize(
    "change",
    [{"endpoint": "/v1/embeddings"}, {"completion_window": "48h"}, {"metadata": {"k": 1}}, {"extra": True}],
)
def test_the_create_body_is_strict(change):
    with pytest.raises(ValidationError):
        CreateOpenAIBatch.model_validate(BODY | change)


def test_an_empty_list_of_batches():
    assert OpenAIBatchList.page([], has_more=False).model_dump() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
