"""n samples of one prompt (`n`), end to end: the API, the session's worker with its default batching."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.polling import wait_for_job, wait_for_terminal
from tests.test_batches import post_batch, results, wait_for_batch
from tests.test_job_spine import run, submit

HELLO = [{"role": "user", "content": "Xin chào! Kể một câu chuyện ngắn."}]


def chat(base_url: str, body: dict) -> requests.Response:
    return requests.post(f"{base_url}/v1/chat/completions", json={"model": "x", "messages": HELLO} | body, timeout=120)


def test_n_choices_among_plain_jobs_answer_n_choices_counting_the_prompt_once(api_server):
    base = api_server.base_url
    neighbours = [{"prompt": f"Hàng xóm {i}", "max_tokens": 24, "ignore_eos": True} for i in range(4)]
    with ThreadPoolExecutor(6) as pool:
        plain = [pool.submit(submit, base, body) for body in neighbours]
        one = pool.submit(chat, base, {"max_tokens": 12, "ignore_eos": True})
        four = pool.submit(chat, base, {"n": 4, "max_tokens": 12, "ignore_eos": True, "temperature": 1.0})
        one, four = one.result(), four.result()
        plain_jobs = [wait_for_terminal(base, job.result()["id"]) for job in plain]
    assert one.status_code == 200 and four.status_code == 200, four.text
    answer = four.json()
    assert [choice["index"] for choice in answer["choices"]] == [0, 1, 2, 3]
    assert all(choice["finish_reason"] == "length" for choice in answer["choices"])
    assert answer["usage"]["prompt_tokens"] == one.json()["usage"]["prompt_tokens"]
    assert answer["usage"]["completion_tokens"] == 4 * 12
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 48
    assert all(job["status"] == "succeeded" and job["usage"]["completion_tokens"] == 24 for job in plain_jobs)
    job = requests.get(f"{base}/jobs/{answer['id'].split('-', 1)[1]}", timeout=5).json()
    assert job["input"]["n"] == 4 and len(job["output"]["choices"]) == 4
    assert job["output"]["text"] == job["output"]["choices"][0]["text"] == answer["choices"][0]["message"]["content"]


def test_greedy_choices_are_the_same_text_and_one_choice_keeps_its_old_shape(api_server):
    greedy = {"prompt": "Thời tiết hôm nay", "max_tokens": 16, "do_sample": False}
    job = run(api_server.base_url, greedy | {"n": 3})
    texts = [choice["text"] for choice in job["output"]["choices"]]
    assert len(texts) == 3 and len(set(texts)) == 1 and texts[0] == job["output"]["text"]
    single = run(api_server.base_url, greedy | {"n": 1})
    assert set(single["output"]) == {"text", "finish_reason"} and "n" not in single["input"]
    assert single["output"]["text"] == texts[0]
    assert job["usage"]["prompt_tokens"] == single["usage"]["prompt_tokens"]


def test_seeded_choices_on_the_sequential_lane_are_reproducible(api_server):
    seeded = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.2, "seed": 7, "ignore_eos": True}
    first, again = (run(api_server.base_url, seeded | {"n": 3}) for _ in range(2))
    texts = [choice["text"] for choice in first["output"]["choices"]]
    assert texts == [choice["text"] for choice in again["output"]["choices"]]
    assert len(set(texts)) > 1  # each choice samples with its own seed (seed + index)
    # Choice 0 samples with the job's own seed: the same text as the one-choice job.
    assert texts[0] == run(api_server.base_url, seeded)["output"]["text"]
    assert first["usage"]["completion_tokens"] == 36


def test_cancel_cancels_every_choice(api_server):
    base = api_server.base_url
    job = submit(base, {"prompt": "Một bài thơ dài", "n": 3, "max_tokens": 2000, "ignore_eos": True})
    wait_for_job(base, job["id"], lambda j: j["status"] == "running")
    assert requests.post(f"{base}/jobs/{job['id']}/cancel", timeout=5).status_code == 202
    canceled = wait_for_terminal(base, job["id"])
    assert canceled["status"] == "canceled"
    choices = canceled["output"]["choices"]
    assert len(choices) == 3 and all(choice["finish_reason"] == "canceled" for choice in choices)
    assert all(choice["completion_tokens"] < 2000 for choice in choices)


def test_n_above_the_limit_is_refused_at_submit(api_server):
    # Invalid input is 422 on the native routes, 400 on the OpenAI ones (docs/api.md).
    response = requests.post(f"{api_server.base_url}/jobs", json={"prompt": "x", "n": 17}, timeout=5)
    assert response.status_code == 422 and response.json()["error"]["field"] == "n", response.text
    response = chat(api_server.base_url, {"n": 17})
    assert response.status_code == 400 and response.json()["error"]["param"] == "n"


def test_a_batch_line_with_n_gets_every_choice_in_its_result(api_server):
    lines = [
        {"custom_id": "two", "body": {"prompt": "Lô hàng", "max_tokens": 4, "ignore_eos": True, "n": 2}},
        {"custom_id": "one", "body": {"prompt": "Lô hàng", "max_tokens": 4, "ignore_eos": True}},
    ]
    batch = post_batch(api_server.base_url, lines)
    wait_for_batch(api_server.base_url, batch["id"])
    two, one = results(api_server.base_url, batch["id"])
    assert [choice["index"] for choice in two["output"]["choices"]] == [0, 1]
    assert two["usage"]["completion_tokens"] == 8 and two["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]
    assert "choices" not in one["output"]


def test_a_streamed_answer_with_n_choices_carries_each_under_its_index(api_server):
    body = {"model": "x", "messages": HELLO, "n": 3, "max_tokens": 10, "temperature": 1.0, "stream": True}
    body["stream_options"] = {"include_usage": True}
    response = requests.post(f"{api_server.base_url}/v1/chat/completions", json=body, stream=True, timeout=120)
    assert response.status_code == 200
    lines = [line[len("data: ") :] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + (choice["delta"].get("content") or "")
            if choice["finish_reason"]:
                reasons[choice["index"]] = choice["finish_reason"]
    job = requests.get(f"{api_server.base_url}/jobs/{chunks[0]['id'].split('-', 1)[1]}", timeout=5).json()
    assert texts == {choice["index"]: choice["text"] for choice in job["output"]["choices"]}
    assert set(reasons) == {0, 1, 2} and chunks[-1]["usage"] == job["usage"]
