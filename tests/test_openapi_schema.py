"""The API against its own OpenAPI document: schemathesis generates valid and invalid requests for every operation.

In process (WSGI) against the test Redis, on a queue no worker reads: no answer is a 5xx, every status, media type
and body is the documented one, and every request the document calls invalid is refused with a 4xx.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import JSONL_MEDIA_TYPES
from tests.conftest import unconsumed_queue_name

API_KEY = "schema-test-key"
# 40 each keeps the run well past MIN_CASES and negative cases past a third of them, in about two thirds of the time
# 60 took (the suite is near its 15-minute budget).
EXAMPLES_PER_OPERATION_AND_MODE = 40
MIN_CASES = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# A body the document calls invalid may also be refused for its size (413) or type (415). With no worker, a valid
# `POST /v1/generate` (and an OpenAI completion) waits out SYNC_WAIT_SECONDS and answers its documented 504, and
# `GET /readyz` its documented 503 (not ready); the test itself holds every other answer below 500.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 409, 413, 415, 422]},
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503, 504]},
        }
    }
)
NO_WORKER_ANSWERS = {
    ("POST /v1/generate", 504),
    ("POST /v1/chat/completions", 504),
    ("POST /v1/completions", 504),
    ("GET /readyz", 503),
}

# One generated line is a JSONL body of one line.
schemathesis.serializer.alias(list(JSONL_MEDIA_TYPES), "application/json")


@pytest.fixture
def app(make_settings, request):
    settings = make_settings(
        gpu_queue=unconsumed_queue_name(request),
        api_keys=[API_KEY],
        admin_api_keys=[API_KEY],
        sync_wait_seconds=0.05,
        max_queue_depth=10**6,
    )
    return create_app(settings)


def _run(operation, mode: GenerationMode, counts: Counter) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        counts[mode.value] += 1
        counts[(operation.label, response.status_code)] += 1

    check()


def _has_inputs(operation) -> bool:
    """Whether the operation has anything to make invalid (a body or parameters)."""
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def test_every_operation_answers_as_documented(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)
    counts: Counter = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 29
    for operation in operations:
        _run(operation, GenerationMode.POSITIVE, counts)
        if _has_inputs(operation):
            _run(operation, GenerationMode.NEGATIVE, counts)
    positive, negative = counts[GenerationMode.POSITIVE.value], counts[GenerationMode.NEGATIVE.value]
    assert positive + negative >= MIN_CASES and negative >= MIN_CASES // 3, counts
    server_errors = [key for key in counts if isinstance(key, tuple) and key[1] >= 500 and key not in NO_WORKER_ANSWERS]
    assert server_errors == [], counts
    # Both sides of the edge were reached: accepted jobs and refused ones.
    assert counts[("POST /jobs", 202)] > 0 and counts[("POST /jobs", 422)] > 0, counts
