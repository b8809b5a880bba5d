"""The web console end to end, in headless chromium, against the real API, GPU worker and ops worker (default
settings): a prompt streams in, the jobs table and a job's page, cancel, a 20-line batch upload, the charts, a
phone's screen, API keys, and no request leaving the service. Screenshots go to test-artifacts/console/."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from launcher.redis_server import free_port
from tests.browser import launched_browser, screenshot
from tests.conftest import start_api_server, stop_process
from tests.jsonl import json_lines
from tests.polling import get_job, poll_until, wait_for_job
from tests.receivers import Receiver

# Long enough (every token generated, end of text ignored) that the page shows text while the job still runs.
STREAMED_TOKENS = 1500
LONG_JOB = {"prompt": "Một câu chuyện dài", "max_tokens": 1900, "ignore_eos": True}
WAIT_S = 60
WAIT_MS = WAIT_S * 1000
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    yield from launched_browser()


def test_console_end_to_end(browser, api_server, webhook_worker, tmp_path):
    base = api_server.base_url
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{base}/")

    # A prompt: its answer appears token by token while the job is still running, then the full job.
    prompt = f"Xin chào, hôm nay Hà Nội thế nào? {uuid.uuid4().hex[:6]}"
    page.fill("#prompt-text", prompt)
    page.wait_for_selector("#param-max_tokens")
    page.fill("#param-max_tokens", str(STREAMED_TOKENS))
    page.check("#param-ignore_eos")
    page.click("#prompt-submit")
    partial = poll_until(lambda: page.text_content("#answer-text"), bool, WAIT_S, "the first tokens on the page")
    job_id = page.get_attribute("#answer-text", "data-job-id")
    status_then = get_job(base, job_id)["status"]
    assert status_then == "running", f"the page showed text only once the job was {status_then}"
    page.wait_for_selector("#answer-status [data-status=succeeded]", timeout=WAIT_MS)
    job = get_job(base, job_id)
    assert job["usage"]["completion_tokens"] == STREAMED_TOKENS
    assert len(partial) < len(job["output"]["text"]) and job["output"]["text"].startswith(partial)
    assert page.text_content("#answer-text") == job["output"]["text"]
    assert str(STREAMED_TOKENS) in page.text_content("#answer-details")  # usage, timings, resources shown
    screenshot(page, "01-prompt-streamed")

    # n samples of the prompt: every choice is listed under the answer, with its index and finish reason.
    page.fill("#param-n", "2")
    page.click("#prompt-submit")
    page.wait_for_selector("#job-choices .choice[data-index='1']", timeout=WAIT_MS)
    assert page.locator("#job-choices .choice").count() == 2
    assert "Choice 1 · length" in page.text_content("#job-choices")

    # The jobs table shows it succeeded; its page has the input, output, timings and resource log lines.
    page.click("nav a[data-view=jobs]")
    row = page.wait_for_selector(f"tr[data-job-id='{job_id}'][data-status=succeeded]", timeout=WAIT_MS)
    screenshot(page, "02-jobs-table")
    row.query_selector("a").click()
    page.wait_for_selector("#job-status [data-status=succeeded]", timeout=WAIT_MS)
    assert page.text_content("#job-output") == job["output"]["text"]
    assert prompt in page.text_content("#job-page")  # Vietnamese input, shown as sent
    assert job_id in page.text_content("#job-logs")  # the seed-format resource lines end with the job id
    screenshot(page, "03-job-page")

    # Cancel another running job from its page; its webhook delivery shows there once the ops worker made it.
    receiver = Receiver(free_port()).start()
    try:
        long_job = requests.post(f"{base}/jobs", json=LONG_JOB | {"webhook": receiver.url}, timeout=5).json()
        wait_for_job(base, long_job["id"], lambda seen: seen["status"] == "running", timeout_s=60)
        page.goto(f"{base}/#/jobs/{long_job['id']}")
        page.wait_for_selector("#job-status [data-status=running]", timeout=WAIT_MS)
        poll_until(lambda: page.text_content("#job-output"), bool, WAIT_S, "tokens on the job's page")
        page.click(f"button.cancel[data-job-id='{long_job['id']}']")
        page.wait_for_selector("#job-status [data-status=canceled]", timeout=WAIT_MS)
        assert get_job(base, long_job["id"])["status"] == "canceled"
        wait_for_job(base, long_job["id"], lambda seen: bool(seen["webhook"]["deliveries"]), timeout_s=60)
        page.reload()
        page.wait_for_selector("#job-deliveries tbody tr", timeout=WAIT_MS)
        screenshot(page, "04-job-canceled")
    finally:
        receiver.stop()

    # A 20-line text file uploaded from the browser becomes a batch whose progress reaches 20/20.
    prompts_file = tmp_path / "cau-hoi.txt"
    prompts_file.write_text("".join(f"Câu hỏi số {n}: thủ đô của Việt Nam là gì?\n" for n in range(1, 21)), "utf-8")
    page.click("nav a[data-view=batches]")
    page.set_input_files("#batch-file", str(prompts_file))
    page.fill("#batch-max-tokens", "8")
    page.click("#batch-upload")
    batch_id = page.wait_for_selector("#upload-result .mono", timeout=WAIT_MS).text_content()
    batch_row = f"tr[data-batch-id='{batch_id}']"
    page.wait_for_selector(f"{batch_row}[data-status=completed]", timeout=WAIT_MS)
    assert page.text_content(f"{batch_row} .done-total") == "20/20"
    screenshot(page, "05-batch-done")
    with page.expect_download() as download:
        page.click(f"{batch_row} button.results")
    results = json_lines(Path(download.value.path()).read_text("utf-8"))
    assert [result["custom_id"] for result in results] == [f"line-{n}" for n in range(1, 21)]
    assert {result["status"] for result in results} == {"succeeded"}

    # The charts draw the ops worker's samples: queue depth, jobs in flight, tokens/s, VRAM and RAM per worker.
    page.click("nav a[data-view=charts]")
    for chart in ("queue", "in-flight", "tokens", "vram", "ram"):
        page.wait_for_selector(f"#chart-{chart} path.line", state="attached", timeout=WAIT_MS)
    screenshot(page, "06-charts")

    # Everything the page loaded came from the service itself.
    assert requested and all(url.startswith(f"{base}/") for url in requested), requested
    context.close()

    # A phone: the same pages fit its width (tables scroll inside their cards).
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    small = phone.new_page()
    for name, path, ready in (
        ("prompt", "/#/", "#prompt-submit"),
        ("jobs", "/#/jobs", f"tr[data-job-id='{job_id}']"),
        ("job", f"/#/jobs/{job_id}", "#job-status [data-status=succeeded]"),
        ("batches", "/#/batches", batch_row),
    ):
        small.goto(f"{base}{path}")
        small.wait_for_selector(ready, timeout=WAIT_MS)
        assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{name} is wider"
        screenshot(small, f"07-phone-{name}")
    phone.close()


@pytest.fixture(scope="module")
def keyed_api(worker, tmp_path_factory):
    """The API with two keys, beside the session's worker."""
    base = tmp_path_factory.mktemp("console-keys")
    server = start_api_server(dict(worker.env, API_KEYS="console-key-a,console-key-b"), base / "gunicorn.out")
    yield server
    stop_process(server.process)


def test_console_asks_for_a_key_and_shows_only_that_keys_jobs(browser, keyed_api):
    base = keyed_api.base_url
    other = requests.post(
        f"{base}/jobs", json={"prompt": "của khoá B", "max_tokens": 4}, headers=_bearer("console-key-b"), timeout=5
    ).json()
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(f"{base}/#/jobs")
    page.wait_for_selector("#key-dialog[open]", timeout=WAIT_MS)
    page.fill("#key-input", "console-key-a")
    page.click("#key-submit")

    # Chat turns sent with the key stream their answer (the events are read with the key too).
    page.click("nav a[data-view=prompt]")
    page.check("input[name=mode][value=chat]")
    page.fill(".turn-content", "Xin chào khoá A")
    page.wait_for_selector("#param-max_tokens")
    page.fill("#param-max_tokens", "16")
    page.click("#prompt-submit")
    page.wait_for_selector("#answer-status [data-status=succeeded]", timeout=WAIT_MS)
    job_id = page.get_attribute("#answer-text", "data-job-id")
    job = _job(base, job_id, "console-key-a")
    assert job["input"]["messages"] == [{"role": "user", "content": "Xin chào khoá A"}]
    assert page.text_content("#answer-text") == job["output"]["text"]

    page.click("nav a[data-view=jobs]")
    page.wait_for_selector(f"tr[data-job-id='{job_id}']", timeout=WAIT_MS)
    assert page.query_selector(f"tr[data-job-id='{other['id']}']") is None  # key B's job is not listed
    assert page.evaluate("sessionStorage.length") == 1
    screenshot(page, "08-keyed-jobs")

    # The charts are an admin's view (ADMIN_API_KEYS): a tenant's key is told so rather than shown a broken page.
    page.click("nav a[data-view=charts]")
    page.wait_for_selector("#charts-admin-only", timeout=WAIT_MS)
    assert "ADMIN_API_KEYS" in page.text_content("#charts-note")
    context.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _job(base: str, job_id: str, key: str) -> dict:
    return requests.get(f"{base}/jobs/{job_id}", headers=_bearer(key), timeout=5).json()
