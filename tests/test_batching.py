"""Continuous batching in the one worker: jobs share the model, yet each keeps its own parameters."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from api.app import create_app
from core.jobs.model import parse_iso
from core.workers.registry import WorkerRegistry
from tests.conftest import connect, service_env, start_worker, stop_process
from tests.polling import is_terminal, poll_until, wait_for_terminal
from tests.test_job_spine import run, submit

LONG = {"prompt": "Một bài thơ dài về Hà Nội", "max_tokens": 160, "ignore_eos": True, "do_sample": False}


def run_together(base_url: str, bodies: list[dict]) -> list[dict]:
    """Submit every body at once, then wait for all of them."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        ids = list(pool.map(lambda body: submit(base_url, body)["id"], bodies))
    return [wait_for_terminal(base_url, job_id) for job_id in ids]


def test_short_job_leaves_the_batch_while_neighbours_go_on(api_server):
    bodies = [LONG | {"prompt": f"{LONG['prompt']} {i}"} for i in range(5)]
    bodies.insert(2, {"prompt": "Ngắn thôi", "max_tokens": 5, "ignore_eos": True})
    jobs = run_together(api_server.base_url, bodies)
    short, neighbours = jobs[2], jobs[:2] + jobs[3:]
    assert short["status"] == "succeeded" and short["usage"]["completion_tokens"] == 5
    assert short["output"]["finish_reason"] == "length"
    assert all(job["usage"]["completion_tokens"] == 160 for job in neighbours)
    assert short["resources"]["batch_size"] > 1
    # It finished while the long jobs that started before it were still running.
    assert any(parse_iso(short["completed_at"]) < parse_iso(job["completed_at"]) for job in neighbours)
    assert max(job["resources"]["batch_size"] for job in jobs) >= 3


def test_greedy_job_in_a_shared_batch_matches_its_solo_result(api_server):
    greedy = {"prompt": "Thời tiết hôm nay", "max_tokens": 24, "do_sample": False}
    solo = run(api_server.base_url, greedy)
    sampled = {"max_tokens": 40, "temperature": 1.3, "top_p": 0.95, "ignore_eos": True}
    jobs = run_together(api_server.base_url, [sampled | {"prompt": f"hàng xóm {i}"} for i in range(4)] + [greedy])
    assert jobs[-1]["resources"]["batch_size"] > 1
    assert jobs[-1]["output"]["text"] == solo["output"]["text"]


def test_stop_string_ends_only_its_own_job(api_server):
    probe = {"prompt": "The weather in Hanoi", "max_tokens": 40, "do_sample": False, "ignore_eos": True}
    text = run(api_server.base_url, probe)["output"]["text"]
    stop = next(text[i : i + 3] for i in range(6, len(text) - 3) if text[i : i + 3].strip())
    neighbour = probe | {"prompt": "The weather in Hanoi"}  # same text, no stop string
    jobs = run_together(api_server.base_url, [probe | {"stop": [stop]}, neighbour, LONG])
    stopped, untouched = jobs[0], jobs[1]
    assert stopped["output"]["finish_reason"] == "stop"
    assert stopped["output"]["text"] == text[: text.index(stop)]
    assert untouched["output"]["text"] == text and untouched["output"]["finish_reason"] == "length"


def test_per_job_sampling_parameters_are_honoured_inside_a_batch(api_server):
    top_k_one = {"prompt": "Phở bò", "max_tokens": 20, "temperature": 1.5, "top_k": 1, "ignore_eos": True}
    greedy = {"prompt": "Phở bò", "max_tokens": 20, "do_sample": False, "ignore_eos": True}
    hot = {"prompt": "Phở bò", "max_tokens": 20, "temperature": 1.5, "top_p": 1.0, "ignore_eos": True}
    jobs = run_together(api_server.base_url, [top_k_one, greedy, hot, hot])
    # top_k=1 leaves one candidate, whatever the temperature: the greedy text.
    assert jobs[0]["output"]["text"] == jobs[1]["output"]["text"]
    # Two hot samples without a seed differ from greedy (random weights make ties vanishingly rare).
    assert (
        jobs[2]["output"]["text"] != jobs[1]["output"]["text"] or jobs[3]["output"]["text"] != jobs[1]["output"]["text"]
    )


def test_seed_and_repetition_penalty_are_honoured_beside_a_batch(api_server):
    seeded = {"prompt": "Hà Nội", "max_tokens": 24, "temperature": 1.0, "top_p": 1.0, "seed": 42, "ignore_eos": True}
    alone = run(api_server.base_url, seeded)
    jobs = run_together(api_server.base_url, [LONG, seeded, LONG | {"prompt": "khác"}])
    assert jobs[1]["output"]["text"] == alone["output"]["text"]
    plain = {"prompt": "Xin chào Xin chào Xin chào", "max_tokens": 24, "do_sample": False, "ignore_eos": True}
    penalized = run(api_server.base_url, plain | {"repetition_penalty": 5.0})
    assert penalized["output"]["text"] != run(api_server.base_url, plain)["output"]["text"]


@pytest.fixture
def one_at_a_time_worker(redis_server, demo_model_dir, tmp_path, request):
    """A second worker with MAX_BATCH_SIZE=1 on a queue of its own."""
    queue = f"one-at-a-time-{request.node.name}"
    env = service_env(redis_server.url, demo_model_dir, tmp_path / "logs", MAX_BATCH_SIZE="1", GPU_QUEUE=queue)
    process = start_worker(env, tmp_path / "worker.out", WorkerRegistry(connect(redis_server.url)), "one-at-a-time")
    yield queue
    stop_process(process)


def test_batch_size_one_runs_jobs_one_at_a_time(make_settings, one_at_a_time_worker):
    client = create_app(make_settings(gpu_queue=one_at_a_time_worker)).test_client()
    body = {"prompt": "Từng việc một", "max_tokens": 60, "ignore_eos": True}
    ids = [client.post("/jobs", json=body).get_json()["id"] for _ in range(4)]
    jobs = poll_until(
        lambda: [client.get(f"/jobs/{job_id}").get_json() for job_id in ids],
        lambda jobs: all(is_terminal(job) for job in jobs),
        60,
        "4 jobs to finish",
    )
    assert all(job["status"] == "succeeded" for job in jobs)
    assert all(job["resources"]["batch_size"] == 1 for job in jobs)
    spans = sorted((parse_iso(job["started_at"]), parse_iso(job["completed_at"])) for job in jobs)
    assert all(previous[1] <= following[0] for previous, following in zip(spans, spans[1:], strict=False))
