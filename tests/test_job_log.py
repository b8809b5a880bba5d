"""LOG_DIR/jobs.jsonl: a JSON line per job the worker finishes, prompts only with LOG_PROMPTS=true, rotated by size."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.jobs.model import Job, JobStatus, new_job_id, utc_now_iso
from tests.jsonl import json_lines
from tests.polling import poll_until
from tests.test_job_spine import run
from worker.job_log import JOB_LOG_FILE, JobLog


def lines_for(log_file: Path, job_ids: set[str]) -> list[dict]:
    """The log's lines about these jobs (the session's other jobs are in it too)."""
    if not log_file.exists():
        return []
    found = json_lines(log_file.read_text(encoding="utf-8"))
    return [line for line in found if line["id"] in job_ids]


def test_each_finished_job_has_one_line_and_no_prompt_by_default(api_server, worker):
    marker = f"secret-{uuid.uuid4().hex}"
    bodies = [{"prompt": f"{marker} câu {i}", "max_tokens": 6, "ignore_eos": True} for i in range(4)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        jobs = {job["id"]: job for job in pool.map(lambda body: run(api_server.base_url, body), bodies)}
    log_file = worker.log_dir / JOB_LOG_FILE
    # The line is written just after the outcome is stored, so a client may see the job finished a moment earlier.
    lines = poll_until(lambda: lines_for(log_file, set(jobs)), lambda found: len(found) >= len(jobs), 10, "4 lines")
    assert sorted(line["id"] for line in lines) == sorted(jobs)
    for line in lines:
        job = jobs[line["id"]]
        assert line["status"] == "succeeded" and line["finish_reason"] == "length" and line["error_type"] is None
        assert line["usage"] == job["usage"] and line["timings"] == job["metrics"]
        assert line["resources"] == job["resources"] and line["batch_size"] == job["resources"]["batch_size"]
        assert line["worker"] == job["worker"] and line["attempts"] == 1
        assert (line["created_at"], line["started_at"], line["completed_at"]) == (
            job["created_at"],
            job["started_at"],
            job["completed_at"],
        )
        assert "input" not in line and "output" not in line
    assert marker not in log_file.read_text(encoding="utf-8")


def finished_job(prompt: str, text: str) -> Job:
    now = utc_now_iso()
    return Job(
        id=new_job_id(),
        status=JobStatus.SUCCEEDED,
        created_at=now,
        started_at=now,
        completed_at=now,
        input={"prompt": prompt, "max_tokens": 8},
        output={"text": text, "finish_reason": "length"},
        usage={"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11},
        worker="gpu@test#1",
    )


def test_log_prompts_writes_prompt_and_output_and_the_file_rotates_by_size(tmp_path):
    job_log = JobLog(tmp_path, max_bytes=2048, include_prompts=True)
    # About 550 bytes a line: 10 lines fill three files, within the five old files kept.
    written = [finished_job(f"Câu hỏi bí mật {i}", f"trả lời {i}") for i in range(10)]
    for job in written:
        job_log.write(job)
    job_log.close()
    files = sorted(tmp_path.glob(f"{JOB_LOG_FILE}*"))
    assert len(files) > 1 and all(path.stat().st_size <= 2048 for path in files)
    lines = [line for path in files for line in json_lines(path.read_text(encoding="utf-8"))]
    assert sorted(line["id"] for line in lines) == sorted(job.id for job in written)
    by_id = {line["id"]: line for line in lines}
    for job in written:
        assert by_id[job.id]["input"] == {"prompt": job.input.prompt}
        assert by_id[job.id]["output"] == job.output.text


def test_a_custom_id_with_unicode_line_separators_stays_on_one_line(tmp_path):
    job_log = JobLog(tmp_path, max_bytes=1 << 20, include_prompts=True)
    job = finished_job("một\u2028hai\u2029ba\x85bốn", "out\u2028put").model_copy(update={"custom_id": "row\u20281"})
    job_log.write(job)
    job_log.close()
    text = (tmp_path / JOB_LOG_FILE).read_text(encoding="utf-8")
    # Python's splitlines (as jq-less readers use it) breaks on U+2028, U+2029 and U+0085: none is written raw.
    (line,) = text.splitlines()
    record = json.loads(line)
    assert record["custom_id"] == "row\u20281" and record["input"]["prompt"] == "một\u2028hai\u2029ba\x85bốn"
    assert "bốn" in line, "the rest of the text stays readable UTF-8"
