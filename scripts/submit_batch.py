"""Send thousands of prompts to the service and collect the results into one JSONL file you can trust.

    llmq-submit-batch prompts.txt results.jsonl     # also: make batch IN=... OUT=..., python -m scripts.submit_batch

Input: JSONL in the batch format (`{"custom_id": ..., "body": {...}}` per line) or in OpenAI's batch format
(`{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {"model", "messages"...}}`), a text file
with one prompt per line, or a CSV with a `prompt` column (and optionally `custom_id`). `--output-format openai`
writes OpenAI batch output lines instead of the service's own. `--json-schema schema.json` asks every line (that
sets no `response_format` of its own) for JSON that validates against that schema. Each result is appended to the
output as it finishes. Run the same command again after Ctrl-C or a crash: inputs already in the output are skipped, and
nothing is submitted twice (a batch is resumed by its id; single jobs carry an Idempotency-Key). Exits 1 if any
job failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from core.json_lines import one_line

TERMINAL = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class InputLine:
    custom_id: str
    body: dict[str, Any]
    # OpenAI's batch format: `method` and `url`, sent with the line as they are.
    openai: dict[str, Any] = field(default_factory=dict)

    def as_batch_line(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "body": self.body} | self.openai


def openai_defaults(defaults: dict[str, Any], url: str = "") -> dict[str, Any]:
    """The CLI's sampling defaults as an OpenAI request names them (greedy is temperature 0 there; a chat asks for
    logprobs with `logprobs: true` and `top_logprobs`)."""
    named = {name: value for name, value in defaults.items() if name != "do_sample"}
    if defaults.get("do_sample") is False:
        named["temperature"] = 0
    if "logprobs" in defaults and url.endswith("/chat/completions"):
        named |= {"logprobs": True, "top_logprobs": defaults["logprobs"]}
    return named


def read_inputs(path: Path, defaults: dict[str, Any]) -> list[InputLine]:
    """The inputs, whatever the file's format; CLI sampling defaults fill what a line leaves out."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "prompt" not in rows[0]:
            raise SystemExit(f"{path}: the CSV has no `prompt` column")
        return [
            InputLine(row.get("custom_id") or f"row-{number}", defaults | {"prompt": row["prompt"]})
            for number, row in enumerate(rows, start=1)
        ]
    first = next((line for line in newline_split(text) if line.strip()), "")
    if path.suffix.lower() in (".jsonl", ".ndjson") or first.lstrip().startswith("{"):
        lines = []
        for number, line in enumerate(newline_split(text), start=1):
            if line.strip():
                item = json.loads(line)
                custom_id = str(item.get("custom_id", f"line-{number}"))
                openai = {name: item[name] for name in ("method", "url") if name in item}
                fill = openai_defaults(defaults, item.get("url", "")) if openai else defaults
                lines.append(InputLine(custom_id, fill | item["body"], openai))
        return lines
    return [
        InputLine(f"line-{number}", defaults | {"prompt": line})
        for number, line in enumerate(newline_split(text), start=1)
        if line.strip()
    ]


def schema_format(path: Path) -> dict[str, Any]:
    """The response_format asking for JSON that follows the schema in `path` (named after the file)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"{path}: not a readable JSON file ({error})") from None
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in path.stem)[:64] or "schema"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def newline_split(text: str) -> list[str]:
    """Lines split at newlines only (a `\r` before one dropped). `str.splitlines` also splits at U+2028, U+0085 and
    other separators, which JSON leaves raw inside strings: a generated text holding one cut its result line in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]


@dataclass
class Output:
    """The results file: what it already holds, and a lock so threads append whole lines."""

    path: Path
    done: dict[str, str] = field(default_factory=dict)  # custom_id -> status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> Output:
        if not self.path.exists():
            return self
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            # A line cut short by a crash: drop it; its input is collected again (its job is found, not remade).
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text, encoding="utf-8")
        for line in newline_split(text):
            if not line:
                continue
            result = json.loads(line)
            self.done[result["custom_id"]] = status_of(result)
        return self

    def append(self, result: dict[str, Any]) -> bool:
        """Write one result unless its custom_id is already there; True when written."""
        with self.lock:
            if result["custom_id"] in self.done:
                return False
            with self.path.open("a", encoding="utf-8") as out:
                out.write(one_line(result) + "\n")  # one result stays one line for every reader
                out.flush()
            self.done[result["custom_id"]] = status_of(result)
            return True


def status_of(result: dict[str, Any]) -> str:
    """A result line's status; an OpenAI output line's is read from its response or error."""
    if "status" in result:
        return result["status"]
    response = result.get("response")
    if response is not None:
        return "succeeded" if response["status_code"] == 200 else "failed"
    return "canceled" if (result.get("error") or {}).get("code") == "batch_cancelled" else "failed"


def usage_of(result: dict[str, Any]) -> dict[str, Any]:
    if "status" in result:
        return result.get("usage") or {}
    return ((result.get("response") or {}).get("body") or {}).get("usage") or {}


class Client:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request, retried while the service says it is busy or unreachable (503, connection errors)."""
        for wait_s in (1, 2, 4, 8, 15, 30, 30, 30, 60):
            try:
                response = self.session.request(method, self.url + path, timeout=60, **kwargs)
            except requests.ConnectionError as error:
                print(f"\n{self.url} unreachable ({error}); retrying in {wait_s} s", file=sys.stderr)
                time.sleep(wait_s)
                continue
            if response.status_code == 503:
                time.sleep(float(response.headers.get("Retry-After", wait_s)))
                continue
            if response.status_code >= 400:
                raise SystemExit(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
            return response
        raise SystemExit(f"{self.url} stayed unavailable; run the same command again later to resume")


class Progress:
    """A tqdm bar showing done/failed/total and tokens/s."""

    def __init__(self, total: int, already: int) -> None:
        self.bar = tqdm(total=total, initial=already, unit="job", dynamic_ncols=True)
        self.failed = 0
        self.tokens = 0
        self.started = time.monotonic()

    def note(self, result: dict[str, Any]) -> None:
        self.failed += status_of(result) != "succeeded"
        self.tokens += usage_of(result).get("completion_tokens", 0)
        rate = self.tokens / max(time.monotonic() - self.started, 1e-6)
        self.bar.set_postfix(failed=self.failed, tok_s=f"{rate:.1f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def result_of(job: dict[str, Any], custom_id: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "job_id": job["id"],
        "status": job["status"],
        "output": job.get("output"),
        "error": job.get("error"),
        "usage": job.get("usage"),
    }


def run_as_jobs(client: Client, pending: list[InputLine], output: Output, progress: Progress, args) -> None:
    """One job per input, `--concurrency` at a time; the Idempotency-Key makes a resubmission the same job."""

    def one(line: InputLine) -> None:
        key = hashlib.sha256(f"{args.input_digest}:{line.custom_id}".encode()).hexdigest()
        job = client.call("POST", "/jobs", json=line.body, headers={"Idempotency-Key": key}).json()
        wait_s = 0.05  # short jobs come back fast; long ones are polled less and less often
        while job["status"] not in TERMINAL:
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, args.poll_interval)
            job = client.call("GET", f"/jobs/{job['id']}").json()
        result = result_of(job, line.custom_id)
        if output.append(result):
            progress.note(result)

    with ThreadPoolExecutor(args.concurrency) as pool:
        for future in [pool.submit(one, line) for line in pending]:
            future.result()


def run_as_batch(client: Client, pending: list[InputLine], output: Output, progress: Progress, args) -> int:
    """One batch for all pending inputs; its id is kept beside the output so a rerun resumes it."""
    state_path = output.path.with_name(output.path.name + ".batch.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("input_digest") != args.input_digest or not state.get("batch_id"):
        lines = [line.as_batch_line() for line in pending]
        key = hashlib.sha256(f"{args.input_digest}:{','.join(sorted(output.done))}".encode()).hexdigest()
        batch = client.call("POST", "/batches", json=lines, headers={"Idempotency-Key": key}).json()
        state = {"batch_id": batch["id"], "input_digest": args.input_digest}
        state_path.write_text(json.dumps(state))
    batch_id = state["batch_id"]
    if args.no_wait:
        print(batch_id)
        return 0
    seen_finished = -1
    while True:
        batch = client.call("GET", f"/batches/{batch_id}").json()
        finished = batch["counts"]["succeeded"] + batch["counts"]["failed"] + batch["counts"]["canceled"]
        if finished != seen_finished:
            seen_finished = finished
            query = "?format=openai" if args.output_format == "openai" else ""
            with client.call("GET", f"/batches/{batch_id}/results{query}", stream=True) as response:
                for raw in response.iter_lines():
                    result = json.loads(raw)
                    if status_of(result) in TERMINAL and output.append(result):
                        progress.note(result)
        if batch["completed_at"] is not None and finished == batch["total"]:
            return 0
        time.sleep(args.poll_interval)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="JSONL (batch format), .txt (one prompt per line) or .csv")
    parser.add_argument("output", type=Path, help="results JSONL; appended to, and read back to resume")
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--api-key")
    parser.add_argument("--mode", choices=("batch", "jobs"), default="batch", help="POST /batches, or single jobs")
    parser.add_argument(
        "--output-format",
        choices=("native", "openai"),
        default="native",
        help="the service's result lines, or OpenAI batch output lines (--mode batch)",
    )
    parser.add_argument("--max-tokens", type=int, help="for inputs that don't set it")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--greedy", action="store_true", help="do_sample=false")
    parser.add_argument(
        "--json-schema",
        type=Path,
        metavar="FILE",
        help="a JSON Schema file: every line's text is JSON that follows it (response_format json_schema)",
    )
    parser.add_argument("--n", type=int, help="samples of each prompt (results carry every choice)")
    parser.add_argument(
        "--logprobs", type=int, metavar="K", help="every line asks for its tokens' logprobs with K alternatives (0-20)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="jobs in flight at once (--mode jobs)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--no-wait", action="store_true", help="submit the batch, print its id and leave")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    defaults = {
        name: value
        for name, value in (
            ("max_tokens", args.max_tokens),
            ("temperature", args.temperature),
            ("top_p", args.top_p),
            ("top_k", args.top_k),
            ("do_sample", False if args.greedy else None),
            ("n", args.n),
            ("logprobs", args.logprobs),
        )
        if value is not None
    }
    if args.json_schema is not None:
        defaults["response_format"] = schema_format(args.json_schema)
    inputs = read_inputs(args.input, defaults)
    if args.mode == "jobs" and (args.output_format == "openai" or any(line.openai for line in inputs)):
        raise SystemExit("OpenAI batch files and OpenAI output go through --mode batch")
    args.input_digest = hashlib.sha256(args.input.read_bytes() + json.dumps(defaults).encode()).hexdigest()[:32]
    ids = [line.custom_id for line in inputs]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{args.input}: custom_id values repeat; each input needs its own")
    output = Output(args.output).load()
    pending = [line for line in inputs if line.custom_id not in output.done]
    if output.done:
        print(f"resuming: {len(inputs) - len(pending)} of {len(inputs)} results already in {args.output}")
    client = Client(args.url, args.api_key)
    progress = Progress(len(inputs), len(inputs) - len(pending))
    started = time.monotonic()
    try:
        if pending and args.mode == "jobs":
            run_as_jobs(client, pending, output, progress, args)
        elif pending:
            run_as_batch(client, pending, output, progress, args)
            if args.no_wait:
                return 0
    except KeyboardInterrupt:
        progress.close()
        print(f"\ninterrupted: run the same command again to resume ({len(output.done)} results kept)")
        return 130
    progress.close()
    statuses = [output.done.get(custom_id, "missing") for custom_id in ids]
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    print(
        f"{len(ids)} inputs: " + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f"; {progress.tokens} tokens in {time.monotonic() - started:.1f} s; results in {args.output}"
    )  # fmt: skip
    return 0 if counts.get("succeeded", 0) == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
