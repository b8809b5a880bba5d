"""`make gpu-check`: the service on a real GPU, with a random-weight model of Llama-3.2-3B's exact shape in FP16.

One command, no network. It builds the model into a temporary MODEL_DIR, starts the service as `make run` does
(embedded Redis, GPU worker, ops worker, API, default settings), and prints and writes (`--out`, default
./gpu-check-results/) model load time next to a raw read of the weight files; tokens/s, time to first token and
ms/token at 1, 8 and 32 concurrent 128-token jobs; the 1-job ms/token against the memory-bandwidth limit; peak VRAM;
whether every resource log line names the GPU with non-zero VRAM; and that a forced out-of-memory job fails alone
while the next job succeeds.

A GPU box usually has PyTorch but not the service's other packages. On a machine with network, fetch them as wheels
for the GPU box's Python (here 3.12), into ./.whl of this checkout:

    bash scripts/fetch_gpu_wheels.sh 3.12        # about 25 MB: celery, flask, redis, pydantic, transformers, ...

then copy the checkout (with .whl/) to the GPU box and run `make gpu-check` there: it installs .whl/*.whl into
./.gpu-site (no index, no downloads) and runs this script (`python3 -m scripts.gpu_check` in the checkout, which
needs no install of the project) with the box's own `python3` and its CUDA build of torch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from launcher.redis_server import free_port

# The checkout: every child program runs as `python -m ...` from it, so it needs no install of the project.
ROOT = Path(__file__).resolve().parent.parent

# Llama-3.2-3B's shape (config.json of the released checkpoint).
LLAMA_3_2_3B = {
    "hidden_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
}
# --smoke: the same vocabulary and context, a tiny body, to try the script where there is no GPU.
SMOKE_SHAPE = LLAMA_3_2_3B | {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 256,
}
NEW_TOKENS = 128
CONCURRENCY = (1, 8, 32)
PROMPT = "Hà Nội là thủ đô của nước nào? Hãy kể về lịch sử, ẩm thực và con người nơi đây."
# A prompt long enough that its prefill needs a few GB beyond what the worker already holds.
OOM_PROMPT_CHARS = 190_000


def say(message: str) -> None:
    print(f"[gpu-check] {message}", flush=True)


# ---------------------------------------------------------------- helpers that run in child processes (CUDA there)


def build_model(out_dir: Path, shape: dict) -> None:
    """Random FP16 weights of `shape` and a real BPE tokenizer padded with reserved tokens to the vocabulary."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from scripts.make_demo_model import END_OF_TEXT, EOT, MARKER_NAME, MARKER_TEXT, train_tokenizer

    tokenizer = train_tokenizer(8000)
    real_tokens = len(tokenizer)
    tokenizer.add_tokens(
        [f"<|reserved_special_token_{i}|>" for i in range(1000, 1000 + shape["vocab_size"] - real_tokens)],
        special_tokens=True,
    )
    tokenizer.model_max_length = shape["max_position_embeddings"]
    end_of_text, eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT), tokenizer.convert_tokens_to_ids(EOT)
    config = LlamaConfig(
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[end_of_text, eot],
        pad_token_id=end_of_text,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).eval()
    model.config.dtype = torch.float16
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=end_of_text, do_sample=False
    )
    tokenizer.save_pretrained(out_dir / "tokenizer")
    model.save_pretrained(out_dir / "fp16", max_shard_size="2GB")
    (out_dir / MARKER_NAME).write_text(MARKER_TEXT, encoding="utf-8")
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "real_tokens": real_tokens}))


def copy_bandwidth() -> None:
    """Device-to-device copy bandwidth, counting bytes read and written (what a decode step is bound by)."""
    import torch

    on_gpu = torch.cuda.is_available()
    source = torch.empty(2**31 if on_gpu else 2**28, dtype=torch.uint8, device="cuda" if on_gpu else "cpu")
    target = torch.empty_like(source)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for _ in range(3):
        target.copy_(source)
    sync()
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        target.copy_(source)
    sync()
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bytes_per_s": 2 * source.numel() * rounds / elapsed,
                "gpu": torch.cuda.get_device_name(0) if on_gpu else "none",
                "torch": torch.__version__,
            }
        )
    )


def hold_memory(leave_mb: int) -> None:
    """Take all free GPU memory but `leave_mb`, say so, and hold it until stdin closes (another program's load)."""
    import torch

    held = []
    while True:
        free, _total = torch.cuda.mem_get_info()
        chunk = free - leave_mb * 2**20
        if chunk < 64 * 2**20:
            break
        try:
            held.append(torch.empty(min(chunk, 8 * 2**30), dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            break
    print(json.dumps({"held_gb": sum(t.numel() for t in held) / 2**30}), flush=True)
    sys.stdin.read()


def run_child(mode: str, *args: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "scripts.gpu_check", mode, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# ---------------------------------------------------------------- the service, as `make run` starts it


class Service:
    """`python -m launcher` (what `make run` runs) in the background, its output kept for the report."""

    def __init__(self, model_dir: Path, work_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "service.log"
        env = dict(os.environ, MODEL_DIR=str(model_dir), PORT=str(self.port), LOG_DIR=str(work_dir / "logs"))
        env.update(extra_env or {})
        env.pop("REDIS_URL", None)
        self.log_dir = work_dir / "logs"
        self._log = self.log_path.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "launcher"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 300) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited ({self.process.returncode}); see {self.log_path}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service was not ready within {timeout_s} s; see {self.log_path}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def generate(session: requests.Session, url: str, body: dict) -> dict:
    response = session.post(f"{url}/v1/generate", json=body, timeout=600)
    response.raise_for_status()
    return response.json()


def submit_and_wait(url: str, body: dict, timeout_s: float = 300) -> dict:
    job = requests.post(f"{url}/jobs", json=body, timeout=60)
    job.raise_for_status()
    job_id = job.json()["id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish within {timeout_s} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def concurrent_run(url: str, clients: int, jobs_per_client: int, new_tokens: int = NEW_TOKENS) -> dict:
    body = {"max_tokens": new_tokens, "ignore_eos": True, "temperature": 0.7, "top_p": 0.9}

    def client(index: int) -> list[dict]:
        session = requests.Session()
        return [generate(session, url, body | {"prompt": f"{PROMPT} ({index}.{n})"}) for n in range(jobs_per_client)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [item for batch in pool.map(client, range(clients)) for item in batch]
    wall_s = time.perf_counter() - started
    tokens = sum(r["usage"]["completion_tokens"] for r in results)
    ttfts = [r["metrics"]["time_to_first_token_seconds"] or 0.0 for r in results]
    per_token_ms = [
        1000
        * (r["metrics"]["generation_seconds"] - (r["metrics"]["time_to_first_token_seconds"] or 0.0))
        / max(r["usage"]["completion_tokens"] - 1, 1)
        for r in results
    ]
    return {
        "clients": clients,
        "jobs": len(results),
        "tokens_per_s": tokens / wall_s,
        "ttft_p50_ms": 1000 * percentile(ttfts, 0.5),
        "ttft_p95_ms": 1000 * percentile(ttfts, 0.95),
        "ms_per_token_p50": percentile(per_token_ms, 0.5),
        "batch_seen": max(r["resources"]["batch_size"] for r in results),
        "peak_vram_allocated_gb": max(r["resources"]["peak_vram_allocated_gb"] for r in results),
        "peak_vram_reserved_gb": max(r["resources"]["peak_vram_reserved_gb"] for r in results),
        "results": results,
    }


RESOURCE_LINE = re.compile(r"\[(?P<op>[^\]]+)\] GPU: (?P<gpu>.+?) - VRAM: (?P<alloc>[\d.]+)GB \(allocated\)")


def check_resource_lines(lines: list[str], gpu: str) -> dict:
    """Every resource line names this GPU; every one after the model load shows non-zero allocated VRAM."""
    bad = []
    for line in lines:
        match = RESOURCE_LINE.search(line)
        holds_model = match is not None and match["op"] != "Before model load"
        if match is None or match["gpu"] != gpu or (gpu != "none" and holds_model and float(match["alloc"]) <= 0):
            bad.append(line)
    return {"lines": len(lines), "bad": bad[:5], "ok": bool(lines) and not bad}


def forced_out_of_memory(url: str) -> dict:
    """Another program takes the free GPU memory; a long-prompt job must fail alone, the next one succeed."""
    hog = subprocess.Popen(
        [sys.executable, "-m", "scripts.gpu_check", "hold-memory", "256"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    held = json.loads(hog.stdout.readline())
    try:
        long_prompt = (PROMPT + " ") * (OOM_PROMPT_CHARS // (len(PROMPT) + 1))
        # seed: the job runs on its own forward passes, whose activations need memory the worker doesn't hold.
        oom_job = submit_and_wait(url, {"prompt": long_prompt, "max_tokens": 8, "seed": 1})
    finally:
        hog.stdin.close()
        hog.wait(60)
    next_job = submit_and_wait(url, {"prompt": PROMPT, "max_tokens": 16, "ignore_eos": True})
    return {
        "held_gb": held["held_gb"],
        "oom_job_status": oom_job["status"],
        "oom_job_error": oom_job.get("error"),
        "oom_job_worker": oom_job.get("worker"),
        "next_job_status": next_job["status"],
        "next_job_worker": next_job.get("worker"),
        "ok": oom_job["status"] == "failed"
        and (oom_job.get("error") or {}).get("type") == "out_of_memory"
        and next_job["status"] == "succeeded"
        and oom_job.get("worker") == next_job.get("worker"),
    }


def raw_read_seconds(weights_dir: Path) -> tuple[int, float, bool]:
    """Bytes and seconds to read the weight files; cold (page cache dropped) when this user may drop it."""
    cold = drop_page_cache()
    size, started = 0, time.perf_counter()
    for path in sorted(weights_dir.glob("*.safetensors")):
        with path.open("rb", buffering=0) as handle:
            while chunk := handle.read(64 * 2**20):
                size += len(chunk)
    return size, time.perf_counter() - started, cold


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def report(figures: dict) -> str:
    bw, load = figures["bandwidth"], figures["load"]
    single = figures["runs"][0]
    bound_ms = 1000 * load["weight_bytes"] / bw["bytes_per_s"]
    lines = [
        f"## gpu-check {figures['date']} on {bw['gpu']}",
        "",
        f"torch {bw['torch']}, transformers {figures['transformers']}, Python {sys.version.split()[0]}; "
        f"model: random weights of Llama-3.2-3B's shape, {figures['parameters'] / 1e9:.2f}B parameters, FP16, "
        f"tokenizer {figures['real_tokens']} BPE tokens + reserved tokens to 128,256. Settings from the "
        f"environment, else the defaults (MAX_BATCH_SIZE={figures['max_batch_size']}).",
        f"Engine: {figures['engine_line']}",
        "",
        f"- Model load (worker) {load['load_s']:.2f} s; raw read of the {load['weight_bytes'] / 1e9:.2f} GB of weight "
        f"files {load['read_s']:.2f} s ({'page cache dropped' if load['cold'] else 'page cache warm'}); "
        f"service ready {load['ready_s']:.1f} s after start.",
        "",
        "| concurrent jobs | jobs | tokens/s | TTFT p50 ms | TTFT p95 ms | ms/token p50 | batch seen | peak VRAM GB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in figures["runs"]:
        lines.append(
            f"| {row['clients']} | {row['jobs']} | {row['tokens_per_s']:.1f} | {row['ttft_p50_ms']:.1f} "
            f"| {row['ttft_p95_ms']:.1f} | {row['ms_per_token_p50']:.2f} | {row['batch_seen']} "
            f"| {row['peak_vram_allocated_gb']:.2f} alloc / {row['peak_vram_reserved_gb']:.2f} reserved |"
        )
    res, oom = figures["resource_lines"], figures["oom"]
    oom_line = (
        f"- Forced out of memory ({oom['held_gb']:.1f} GB taken by another process): the long-prompt job "
        f"{oom['oom_job_status']} ({(oom['oom_job_error'] or {}).get('type')}); the next job {oom['next_job_status']} "
        f"on the same worker: {'yes' if oom['oom_job_worker'] == oom['next_job_worker'] else 'no'}. "
        f"{'PASS' if oom['ok'] else 'FAIL'}."
        if "skipped" not in oom
        else f"- Forced out of memory: not run ({oom['skipped']})."
    )
    lines += [
        "",
        f"- 1-job decode: {single['ms_per_token_p50']:.2f} ms/token; memory-bandwidth limit "
        f"{bound_ms:.2f} ms/token ({load['weight_bytes'] / 1e9:.2f} GB / {bw['bytes_per_s'] / 1e12:.2f} TB/s measured "
        f"device-to-device copy): {single['ms_per_token_p50'] / bound_ms:.2f}x the limit.",
        f"- Resource log lines: {res['lines']} checked, every one names {bw['gpu']}, with non-zero VRAM once the "
        "model is loaded: "
        f"{'yes' if res['ok'] else 'NO: ' + repr(res['bad'])}.",
        oom_line,
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="The service on a real GPU with a Llama-3.2-3B-shaped FP16 model.")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-check-results")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the model is built (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model of the same vocabulary: checks the script")
    parser.add_argument("--sweep", action="store_true", help="the engine variants sweep instead (bench/gpu_sweep.py)")
    args, sweep_args = parser.parse_known_args()
    if args.sweep:
        # A benchmark, so it lives in bench/ (which the image leaves out): run as a program of its own.
        sweep = [sys.executable, "-m", "bench.gpu_sweep", *sweep_args, "--out", str(args.out / "sweep")]
        return subprocess.call(sweep + (["--work-dir", str(args.work_dir)] if args.work_dir else []), cwd=ROOT)
    if sweep_args:
        parser.error(f"unrecognized arguments: {' '.join(sweep_args)}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu-check-"))
    model_dir = work / "model"

    say("measuring device-to-device copy bandwidth")
    bandwidth = run_child("bandwidth")
    say(f"{bandwidth['gpu']}: {bandwidth['bytes_per_s'] / 1e12:.2f} TB/s; building the model in {model_dir}")
    started = time.perf_counter()
    built_note = model_dir / "built.json"
    if built_note.is_file():  # a --work-dir of an earlier run: the same model, not built twice
        built = json.loads(built_note.read_text())
        say(f"reusing the model in {model_dir}")
    else:
        built = run_child("build-model", str(model_dir), *(["--smoke"] if args.smoke else []))
        built_note.write_text(json.dumps(built))
        say(f"built {built['parameters'] / 1e9:.2f}B parameters in {time.perf_counter() - started:.0f} s")
    weight_bytes, read_s, cold = raw_read_seconds(model_dir / "fp16")
    drop_page_cache()

    service = Service(model_dir, work)
    figures: dict = {"bandwidth": bandwidth, **built}
    try:
        ready_s = service.wait_ready()
        # API_KEYS unset (the defaults): /readyz tells a caller on this machine each worker's load time.
        workers = requests.get(f"{service.url}/readyz", timeout=30).json().get("workers") or [{}]
        engine_match = re.search(r"(batching engine: attention .*|MAX_BATCH_SIZE=1.*)", service.log_text())
        figures["load"] = {
            "load_s": workers[0].get("model_load_seconds", float("nan")),
            "read_s": read_s,
            "weight_bytes": weight_bytes,
            "cold": cold,
            "ready_s": ready_s,
        }
        figures["engine_line"] = engine_match[1] if engine_match else "(not found in the worker's log)"
        figures["max_batch_size"] = workers[0].get("max_batch_size", "?")
        say(f"ready in {ready_s:.1f} s; {figures['engine_line']}")
        generate(requests.Session(), service.url, {"prompt": PROMPT, "max_tokens": 16, "ignore_eos": True})
        runs = []
        new_tokens = 8 if args.smoke else NEW_TOKENS
        for clients in (1, 2) if args.smoke else CONCURRENCY:
            jobs_per_client = 5 if clients == 1 else 2
            concurrent_run(service.url, clients, 1, new_tokens)  # warm-up at this concurrency
            row = concurrent_run(service.url, clients, jobs_per_client, new_tokens)
            say(
                f"{clients} concurrent: {row['tokens_per_s']:.1f} tokens/s, TTFT p50 {row['ttft_p50_ms']:.1f} ms, "
                f"{row['ms_per_token_p50']:.2f} ms/token"
            )
            runs.append(row)
        figures["runs"] = runs
        job_lines = [line for row in runs for result in row["results"] for line in result.get("logs", [])]
        file_lines = (service.log_dir / "resources.log").read_text(encoding="utf-8").splitlines()
        gpu = runs[0]["results"][0]["resources"]["before"]["gpu"]
        figures["resource_lines"] = check_resource_lines(job_lines + file_lines, gpu)
        if bandwidth["gpu"] != "none":
            say("forcing an out-of-memory job")
            figures["oom"] = forced_out_of_memory(service.url)
        else:
            figures["oom"] = {"skipped": "no GPU", "ok": False}
    finally:
        service.stop()
    import transformers

    figures["transformers"] = transformers.__version__
    figures["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = report(figures)
    print("\n" + text, flush=True)
    (args.out / "gpu-check.md").write_text(text, encoding="utf-8")
    for row in figures["runs"]:
        row.pop("results")
    (args.out / "gpu-check.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    (args.out / "service.log").write_text(service.log_text()[-2_000_000:], encoding="utf-8")
    passed = figures["resource_lines"]["ok"] and figures["oom"]["ok"]
    say(f"results in {args.out}: {'all checks passed' if passed else 'SOME CHECKS FAILED'}")
    return 0 if passed else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "build-model":
        build_model(Path(sys.argv[2]), SMOKE_SHAPE if "--smoke" in sys.argv else LLAMA_3_2_3B)
    elif len(sys.argv) > 1 and sys.argv[1] == "bandwidth":
        copy_bandwidth()
    elif len(sys.argv) > 1 and sys.argv[1] == "hold-memory":
        hold_memory(int(sys.argv[2]))
    else:
        sys.exit(main())
