"""jobs.jsonl: one line per finished job, prompts only when asked, each line one line for every reader."""

from __future__ import annotations

import json

from core.jobs.model import Job, JobStatus
from core.jobs.records import JobOutput, JobUsage
from core.json_lines import one_line
from worker.job_log import JobLog, job_log_record

JOB = Job(
    id="a" * 32,
    status=JobStatus.SUCCEEDED,
    created_at="2026-01-01T00:00:00Z",
    input={"prompt": "secret prompt", "max_tokens": 4},
    output=JobOutput(text="line\u2028break", finish_reason="stop"),
    usage=JobUsage(prompt_tokens=2, completion_tokens=4, total_tokens=6),
    attempts=1,
    worker="gpu@x",
)


def test_the_record_leaves_prompts_out_unless_asked():
    record = job_log_record(JOB, include_prompts=False)
    assert record["id"] == JOB.id and record["status"] == "succeeded" and record["finish_reason"] == "stop"
    assert record["usage"]["total_tokens"] == 6 and "input" not in record and "output" not in record
    with_prompts = job_log_record(JOB, include_prompts=True)
    assert with_prompts["input"] == {"prompt": "secret prompt"} and with_prompts["output"] == "line\u2028break"


def test_a_line_escapes_the_breaks_other_readers_split_on():
    line = one_line({"text": "a\u2028b\u0085c\u2029é"})
    assert len(line.splitlines()) == 1 and "é" in line
    assert json.loads(line)["text"] == "a\u2028b\u0085c\u2029é"


def test_the_log_writes_a_line_per_job(tmp_path):
    log = JobLog(tmp_path / "logs", max_bytes=1 << 20, include_prompts=False)
    log.write(JOB)
    log.write(JOB)
    log.close()
    lines = (tmp_path / "logs" / "jobs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["id"] == JOB.id
