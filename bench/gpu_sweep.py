"""`make gpu-check ARGS=--sweep`: every engine variant on the card, then the service with the best, in one device call.

It builds the Llama-3.2-3B-shaped FP16 model once, then runs, each in a fresh process: the plain reference
(bench/plain_baseline.py: greedy tokens of 8 prompts, the seed-style one-`generate`-at-a-time baseline), and every
variant's raw engine (bench/variant_run.py: warm-up and graph capture, greedy tokens against plain `generate`, 1, 8
and 32 concurrent 128-token jobs, peak VRAM); then the service (`make run`'s processes) with the best variant at 1,
8, 32 and 64 concurrent. Each process writes its figures to the results folder after every step, so a step cut at
its deadline keeps what it measured. `--shape tiny` dry-runs the whole sweep on a CPU with the tiny demo model.

Budget, one device call of at most 9 minutes (540 s), `make gpu-check` installing the wheels first (~20 s):
bandwidth ~5 s; the 3B model built once ~60-90 s; the plain reference ~40 s (load ~10 s, 8 x 32 greedy tokens,
3 x 128-token jobs at 20-40 ms/token); each variant at most VARIANT_CAP_S (load ~10 s, warm-up and capture up to
~30 s, 5 waves of 128 tokens at up to ~100 ms a step: ~50 s at today's speed); the service SERVICE_RESERVE_S (ready
~25 s, 4 waves). The default --budget-s 480 leaves ~40 s for the wheels and the report; variants past the deadline
are skipped (listed first: the ones most worth measuring).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path

from bench.sweep_report import SERVICE_TARGET, report
from bench.sweep_workload import GPU_SHAPE, TINY_SHAPE, FiguresFile
from scripts.gpu_check import PROMPT, Service, concurrent_run, generate, run_child

ROOT = Path(__file__).resolve().parent.parent

# Each variant as the ENGINE_* settings name it; the first one is today's engine on the lent GPU (no flash package).
VARIANTS = {
    "sdpa": {"ENGINE_ATTENTION": "sdpa", "ENGINE_CUDA_GRAPHS": "off"},
    "torch_flash+graphs": {"ENGINE_ATTENTION": "torch_flash", "ENGINE_CUDA_GRAPHS": "on"},
    "sdpa+graphs": {"ENGINE_ATTENTION": "sdpa", "ENGINE_CUDA_GRAPHS": "on"},
    "torch_flash": {"ENGINE_ATTENTION": "torch_flash", "ENGINE_CUDA_GRAPHS": "off"},
    "sdpa+compile1": {"ENGINE_ATTENTION": "sdpa", "ENGINE_CUDA_GRAPHS": "off", "ENGINE_COMPILE_LEVEL": "1"},
    "torch_flash+graphs+compile1": {
        "ENGINE_ATTENTION": "torch_flash",
        "ENGINE_CUDA_GRAPHS": "on",
        "ENGINE_COMPILE_LEVEL": "1",
    },
}
DEFAULT_VARIANTS = ("sdpa", "torch_flash+graphs", "sdpa+graphs", "torch_flash")
VARIANT_CAP_S = 75
SERVICE_RESERVE_S = 100
REFERENCE_CAP_S = 90
TINY_DEMO_MODEL = {"hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate_size": 128}


def say(message: str) -> None:
    print(f"[sweep] {message}", flush=True)


def run_figures_process(module: str, args: list[str], env: dict, out: Path, timeout_s: float) -> dict:
    """`python -m module` in a fresh process (its own session) until done or `timeout_s`; what it wrote to `out`."""
    with out.with_suffix(".log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(max(timeout_s, 1))
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            timed_out = True
    figures = json.loads(out.read_text()) if out.is_file() else {}
    if timed_out:
        figures["timed_out"] = True
    elif process.returncode != 0:
        figures.setdefault("error", f"exited {process.returncode}; see {out.with_suffix('.log')}")
    return figures


def build_model(model_dir: Path, tiny: bool) -> dict:
    """The model, once: the 3B shape in FP16 on the GPU (in a child: CUDA lives there), or the tiny demo model."""
    note = model_dir / "built.json"
    if note.is_file():
        return json.loads(note.read_text())
    if tiny:
        from scripts.make_demo_model import build_demo_model

        build_demo_model(model_dir, dtype="float16", **TINY_DEMO_MODEL)
        built = {"description": "tiny demo Llama (hidden 64, 2 layers, GQA 4/2), FP16 weights run as float32 on CPU"}
    else:
        made = run_child("build-model", str(model_dir))
        built = {"description": f"random weights of Llama-3.2-3B's shape, {made['parameters'] / 1e9:.2f}B, FP16"}
    built["weight_bytes"] = sum(path.stat().st_size for path in (model_dir / "fp16").glob("*.safetensors"))
    note.write_text(json.dumps(built))
    return built


def measure_service(model_dir: Path, work: Path, env: dict, shape, deadline: float, out: FiguresFile) -> None:
    """The service with the best variant: a wave at each concurrency until the deadline, each row saved at once."""
    service = Service(
        model_dir, work, {k: v for k, v in env.items() if k.startswith(("ENGINE_", "MAX_", "RATE", "DEVICE"))}
    )
    pool = ThreadPoolExecutor(1)
    try:
        out.add(ready_s=service.wait_ready(timeout_s=max(deadline - time.monotonic(), 5)))
        generate(__import__("requests").Session(), service.url, {"prompt": PROMPT, "max_tokens": 4, "ignore_eos": True})
        # A short wave at the highest concurrency captures (or compiles) the shapes the timed waves use.
        warm_up = pool.submit(
            concurrent_run, service.url, max(shape.service_concurrency), 1, max(shape.new_tokens // 4, 2)
        )
        warm_up.result(timeout=max(deadline - time.monotonic(), 1))
        rows = []
        for clients in shape.service_concurrency:
            future = pool.submit(concurrent_run, service.url, clients, 1, shape.new_tokens)
            row = future.result(timeout=max(deadline - time.monotonic(), 1))
            row.pop("results")
            rows.append(row)
            out.add(service=rows)
            say(f"service, {clients} concurrent: {row['tokens_per_s']:.1f} tokens/s")
    except (FutureTimeout, RuntimeError) as stopped:
        out.add(service_stopped=f"{type(stopped).__name__}: {stopped}")
    finally:
        service.stop()  # ends any request still waiting, so the pool's thread returns
        pool.shutdown(wait=False)
        (out.path.parent / "service.log").write_text(service.log_text()[-2_000_000:], encoding="utf-8")


def best_variant(variants: dict) -> str | None:
    """The fastest at the highest concurrency among finished variants whose greedy tokens hold for 16."""
    finished = {name: f for name, f in variants.items() if f.get("done") and f.get("raw")}
    faithful = {
        name: f
        for name, f in finished.items()
        if all(d is None or d >= 16 for d in f.get("greedy_first_difference") or [0])
    }
    pool = faithful or finished
    return max(pool, key=lambda name: pool[name]["raw"][-1]["tokens_per_s"]) if pool else None


def main(argv: list[str] | None = None) -> int:
    """Run the sweep; print its table and write it, with every process's figures, under --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-check-results" / "sweep")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--shape", choices=("gpu", "tiny"), default="gpu")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"from: {', '.join(VARIANTS)}")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--budget-s", type=float, default=480)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.budget_s
    tiny = args.shape == "tiny"
    shape = TINY_SHAPE if tiny else GPU_SHAPE
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu-sweep-"))
    model_dir = work / "model"
    env = dict(
        os.environ,
        MODEL_DIR=str(model_dir),
        LOG_DIR=str(work / "logs"),
        MAX_BATCH_SIZE=str(args.max_batch_size),
        RATE_LIMIT="",  # it measures the engine, not the edge's fairness
        PYTHONUNBUFFERED="1",
        **({"DEVICE": "cpu"} if tiny else {}),
    )
    say("measuring device-to-device copy bandwidth")
    bandwidth = run_child("bandwidth")
    say(f"{bandwidth['gpu']}: {bandwidth['bytes_per_s'] / 1e12:.3f} TB/s; building the model in {model_dir}")
    sweep: dict = {"bandwidth": bandwidth, "model": build_model(model_dir, tiny), "variants": {}}
    common = ["--shape", args.shape]
    reference_out = args.out / "plain_baseline.json"
    say("plain generate: greedy reference and the seed-style baseline")
    sweep["baseline"] = run_figures_process(
        "bench.plain_baseline", common, env, reference_out, min(REFERENCE_CAP_S, deadline - time.monotonic())
    )
    for name in args.variants.split(","):
        left = deadline - time.monotonic() - SERVICE_RESERVE_S
        if left < 20:
            sweep["variants"][name] = {"error": "skipped: out of the sweep's time budget"}
            continue
        say(f"variant {name} (at most {min(VARIANT_CAP_S, left):.0f} s)")
        figures = run_figures_process(
            "bench.variant_run",
            [*common, "--reference", str(reference_out)],
            env | VARIANTS[name],
            args.out / f"variant-{name}.json",
            min(VARIANT_CAP_S, left),
        )
        sweep["variants"][name] = figures
        say(f"variant {name}: {figures.get('refused') or figures.get('error') or 'measured'}")
    sweep["best"] = best_variant(sweep["variants"])
    if sweep["best"]:
        say(f"the service with {sweep['best']}")
        service_figures = FiguresFile(args.out / "service.json", variant=sweep["best"])
        measure_service(model_dir, work, env | VARIANTS[sweep["best"]], shape, deadline, service_figures)
        sweep["service"] = service_figures.figures.get("service", [])
        sweep["service_note"] = f"target service / raw >= {SERVICE_TARGET} at 1, 8 and 32; no raw figure at 64"
    import transformers

    sweep |= {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": bandwidth["gpu"] if bandwidth["gpu"] != "none" else f"{platform.node()} (CPU only)",
        "label": (
            "CPU dry run of the sweep with the tiny demo model: checks the sweep end to end, NOT GPU figures."
            if tiny
            else "GPU figures, one run on one card: compare variants only inside this table."
        ),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "max_batch_size": args.max_batch_size,
        "new_tokens": shape.new_tokens,
    }
    text = report(sweep)
    print("\n" + text, flush=True)
    (args.out / "sweep.md").write_text(text, encoding="utf-8")
    (args.out / "sweep.json").write_text(json.dumps(sweep, indent=2, default=str), encoding="utf-8")
    say(f"results in {args.out}")
    return 0 if sweep["best"] else 1


if __name__ == "__main__":
    sys.exit(main())
