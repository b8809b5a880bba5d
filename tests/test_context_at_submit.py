"""Prompt tokens plus max_tokens beyond the model's context: refused at submit when the API can read the model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from api.app import create_app
from core.jobs.context_window import ContextWindow
from tests.conftest import ROOT, queue_length, unconsumed_queue_name

DEMO_CONTEXT = 2048


@pytest.fixture
def client_with_model(make_settings, demo_model_dir, request):
    queue = unconsumed_queue_name(request)
    return create_app(make_settings(gpu_queue=queue, model_dir=demo_model_dir)).test_client(), queue


def test_the_api_counts_what_the_worker_counts(demo_model_dir):
    """The API's count (tokenizers only) is the worker's (transformers' tokenizer), special tokens included."""
    from transformers import AutoTokenizer

    worker_tokenizer = AutoTokenizer.from_pretrained(demo_model_dir / "tokenizer", local_files_only=True)
    counter = ContextWindow(demo_model_dir).counter()
    assert counter is not None and counter.context_tokens == DEMO_CONTEXT
    for prompt in ("Xin chào", "Một câu chuyện rất dài " * 50, "emoji 🎉 and\ttabs\nnewlines", " leading space"):
        assert counter.tokenizer.encode(prompt).ids == worker_tokenizer(prompt)["input_ids"], prompt


def test_over_the_context_is_a_422_and_nothing_is_queued(client_with_model, redis_server):
    client, queue = client_with_model
    response = client.post("/jobs", json={"prompt": "Xin chào", "max_tokens": 4000})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "max_tokens" and f"context of {DEMO_CONTEXT} tokens" in error["message"]
    long_prompt = {"prompt": "Một câu chuyện rất dài " * 2000, "max_tokens": 16}
    assert client.post("/jobs", json=long_prompt).status_code == 422
    assert client.post("/v1/generate", json=long_prompt).status_code == 422
    assert queue_length(redis_server.url, queue) == 0


def test_exactly_the_context_is_accepted(client_with_model, demo_model_dir):
    client, _ = client_with_model
    counter = ContextWindow(demo_model_dir).counter()
    prompt_tokens = len(counter.tokenizer.encode("Xin chào").ids)
    fits = client.post("/jobs", json={"prompt": "Xin chào", "max_tokens": DEMO_CONTEXT - prompt_tokens})
    assert fits.status_code == 202
    over = client.post("/jobs", json={"prompt": "Xin chào", "max_tokens": DEMO_CONTEXT - prompt_tokens + 1})
    assert over.status_code == 422


def test_a_batch_line_over_the_context_is_named(client_with_model):
    client, _ = client_with_model
    lines = [
        {"custom_id": "fits", "body": {"prompt": "ngắn", "max_tokens": 8}},
        {"custom_id": "too-long", "body": {"prompt": "ngắn", "max_tokens": 3000}},
    ]
    response = client.post(
        "/batches", data="\n".join(json.dumps(line) for line in lines), content_type="application/jsonl"
    )
    assert response.status_code == 422
    [bad] = response.get_json()["error"]["lines"]
    assert bad["line"] == 2 and "context" in bad["message"]


def test_without_a_readable_model_the_check_is_skipped(make_settings, request, tmp_path):
    """The API in a container of its own: no model folder, no check here (the worker still refuses)."""
    client = create_app(make_settings(gpu_queue=unconsumed_queue_name(request), model_dir=tmp_path / "none"))
    assert client.test_client().post("/jobs", json={"prompt": "Xin chào", "max_tokens": 4000}).status_code == 202
    assert ContextWindow(tmp_path / "none").counter() is None


def test_chat_messages_are_left_to_the_worker(client_with_model):
    client, _ = client_with_model
    body = {"messages": [{"role": "user", "content": "Xin chào"}], "max_tokens": 4000}
    assert client.post("/jobs", json=body).status_code == 202


def test_counting_loads_no_torch_or_transformers(demo_model_dir):
    check = (
        "import sys\n"
        "from pathlib import Path\n"
        "from core.jobs.context_window import ContextWindow\n"
        "from core.jobs.model import GenerationInput\n"
        f"window = ContextWindow(Path({str(demo_model_dir)!r}))\n"
        "window.check(GenerationInput.parse({'prompt': 'x', 'max_tokens': 4}))\n"
        "assert window.counter() is not None\n"
        "print(sorted({'torch', 'transformers'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
