"""One engine variant's raw figures, in a process of its own: the worker's batching engine, no API, no queue.

`python -m bench.variant_run --out FILE --reference FILE --shape gpu|tiny` reads the worker's settings (ENGINE_*,
MAX_BATCH_SIZE, MODEL_DIR, DEVICE) from the environment, builds the engine with the worker's code and writes, after
each step: how transformers resolved the variant and its warm-up time (or why the variant was refused), the first
differing greedy token against plain `generate` for each prompt, a first wave that captures the graphs of the
shapes used, then tokens/s and ms/token at each concurrency, peak VRAM and the graphs held.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from bench.sweep_workload import (
    GPU_SHAPE,
    GREEDY_PROMPTS,
    TINY_SHAPE,
    FiguresFile,
    first_difference,
    greedy_prompt,
    run_wave,
)
from core.jobs.model import GenerationInput
from core.settings import Settings
from worker.batching_engine import BatchingEngine
from worker.batching_manager import captured_graphs, resolved_variant
from worker.engine_variant import EngineVariantUnavailable
from worker.model_loading import choose_device, load_model

SAMPLED = {"ignore_eos": True, "temperature": 0.7, "top_p": 0.9}


def greedy_tokens(engine: BatchingEngine, tokens: int) -> list[list[int]]:
    """The sweep's greedy prompts, all in one batch; each job's token ids."""

    def one(index: int) -> list[int]:
        seen: list[int] = []
        engine.generate(
            GenerationInput(prompt=greedy_prompt(index), max_tokens=tokens, do_sample=False),
            on_tokens=lambda so_far: seen.__setitem__(slice(None), so_far),
        )
        return seen

    with ThreadPoolExecutor(GREEDY_PROMPTS) as pool:
        return list(pool.map(one, range(GREEDY_PROMPTS)))


def peak_memory_gb() -> dict:
    if not torch.cuda.is_available():
        return {"peak_vram_allocated_gb": None, "peak_vram_reserved_gb": None}
    return {
        "peak_vram_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
        "peak_vram_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
    }


def main() -> int:
    """Measure one variant, writing --out after every step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True, help="plain_baseline's figures (greedy tokens)")
    parser.add_argument("--shape", choices=("gpu", "tiny"), default="gpu")
    args = parser.parse_args()
    shape = TINY_SHAPE if args.shape == "tiny" else GPU_SHAPE
    settings = Settings()
    loaded = load_model(settings, choose_device(settings.device))
    figures = FiguresFile(args.out, load_s=loaded.load_seconds, max_batch_size=settings.max_batch_size)
    started = time.perf_counter()
    try:
        engine = BatchingEngine(loaded, settings)
    except EngineVariantUnavailable as refusal:
        figures.add(refused=str(refusal), done=True)
        return 0
    factory = engine._factory
    figures.add(
        variant=factory.variant.describe(),
        resolved=resolved_variant(engine.manager),
        engine_build_s=time.perf_counter() - started,
        warmup_s=factory.warmup_s,
    )
    try:
        reference = json.loads(args.reference.read_text())["greedy_tokens"]
        ours = greedy_tokens(engine, shape.greedy_tokens)
        figures.add(greedy_first_difference=[first_difference(o, r) for o, r in zip(ours, reference, strict=True)])

        def run_job(prompt: str) -> tuple[int, float | None, float, int]:
            result = engine.generate(GenerationInput(prompt=prompt, max_tokens=shape.new_tokens, **SAMPLED))
            return result.completion_tokens, result.time_to_first_token_s, result.generation_s, result.batch_size

        # The shapes of the waves below (prefill buckets, decode buckets) are captured or compiled here, once.
        first = run_wave(run_job, max(shape.raw_concurrency))
        figures.add(first_wave_s=first["wall_s"], graphs_after_first_wave=captured_graphs(engine.manager))
        rows = []
        for concurrent in shape.raw_concurrency:
            # One client sends 2 jobs back to back (a lone job's figure is noisier); the others one each.
            rows.append(run_wave(run_job, concurrent, jobs=2 if concurrent == 1 else concurrent))
            figures.add(raw=rows, graphs=captured_graphs(engine.manager), **peak_memory_gb())
        figures.add(done=True)
    except Exception as error:  # noqa: BLE001 - a variant that fails mid-run is a result, not the sweep's end
        figures.add(error=f"{type(error).__name__}: {error}")
    finally:
        engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
