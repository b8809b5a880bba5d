"""Peak memory of `make model` (scripts/prepare_model_fp16.py) on a Llama-shaped checkpoint, against a baseline.

    python -m bench.prepare_model_memory [--shape 1b|3b] [--keep DIR]

It writes a random-weight bfloat16 checkpoint of Llama-3.2-1B's (or 3B's) exact shape, tensor by tensor, then runs
in fresh processes, each with its peak resident memory sampled:
- the script itself (`--device cpu`): conversion, then the check, reported separately;
- the baseline: the obvious check, both models held at once (the float32 reference and the FP16 result).
It prints the peaks, their ratios to the FP16 model's size and to the baseline, and appends them to
bench/RESULTS.md. The 1B shape (2.5 GB in bfloat16) fits a small machine; 3B (6.4 GB) needs about 10 GB free.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.results import machine_description, record
from scripts.gpu_check import LLAMA_3_2_3B

ROOT = Path(__file__).resolve().parent.parent

LLAMA_3_2_1B = {
    **LLAMA_3_2_3B,
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
}
SHAPES = {"1b": LLAMA_3_2_1B, "3b": LLAMA_3_2_3B}
SOURCE_SHARD_BYTES = 2 * 10**9

BASELINE = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from scripts.prepare_model_fp16 import CHECK_PROMPT
source, converted, tokenizer = sys.argv[1:4]
ids = AutoTokenizer.from_pretrained(tokenizer).encode(CHECK_PROMPT, return_tensors="pt")
models = [
    AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32),
    AutoModelForCausalLM.from_pretrained(converted, dtype="auto"),
]
with torch.inference_mode():
    reference, half = (model(input_ids=ids).logits.float() for model in models)
print("relative error", float((half - reference).norm() / reference.norm()))
"""


def write_checkpoint(folder: Path, shape: dict) -> int:
    """A random bfloat16 Llama checkpoint with the demo tokenizer, written tensor by tensor; returns its bytes."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from scripts.make_demo_model import train_tokenizer

    tokenizer = train_tokenizer()
    config = LlamaConfig(**shape, dtype=torch.bfloat16, bos_token_id=tokenizer.bos_token_id)
    with torch.device("meta"):
        names_and_shapes = [(name, tuple(p.shape)) for name, p in LlamaForCausalLM(config).state_dict().items()]
    if config.tie_word_embeddings:
        names_and_shapes = [(name, dims) for name, dims in names_and_shapes if name != "lm_head.weight"]
    generator = torch.Generator().manual_seed(0)
    parts: list[list[str]] = []
    part: dict[str, torch.Tensor] = {}
    total = 0

    def flush() -> None:
        save_file(part, str(folder / f"part-{len(parts)}.safetensors"), metadata={"format": "pt"})
        parts.append(list(part))
        part.clear()

    for name, dims in names_and_shapes:
        if name.endswith("norm.weight"):
            tensor = torch.ones(dims, dtype=torch.bfloat16)
        else:
            tensor = (torch.randn(dims, generator=generator) * 0.02).to(torch.bfloat16)
        if part and sum(t.numel() * 2 for t in part.values()) + tensor.numel() * 2 > SOURCE_SHARD_BYTES:
            flush()
        part[name] = tensor
        total += tensor.numel() * 2
    flush()
    # Hugging Face's names and index, as a downloaded checkpoint has them.
    weight_map = {}
    for number, names in enumerate(parts):
        shard = f"model-{number + 1:05d}-of-{len(parts):05d}.safetensors"
        (folder / f"part-{number}.safetensors").rename(folder / shard)
        weight_map.update(dict.fromkeys(names, shard))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return total


class PeakMemory:
    """Samples a process's resident memory every 20 ms, all of it and the anonymous part (without the pages of
    memory-mapped files, which the kernel can drop and read again); `mark()` starts a new phase."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = psutil.Process(process.pid)
        self.phases: list[list[int]] = [[0, 0]]
        self.marks: list[float] = [time.perf_counter()]
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                memory = self.process.memory_info()
            except psutil.Error:
                return
            peak = self.phases[-1]
            peak[0] = max(peak[0], memory.rss)
            peak[1] = max(peak[1], memory.rss - memory.shared)
            time.sleep(0.02)

    def mark(self) -> None:
        self.phases.append([0, 0])
        self.marks.append(time.perf_counter())

    def join(self) -> list[tuple[int, int, float]]:
        """(peak RSS, peak anonymous RSS, seconds) of each phase."""
        self._thread.join(timeout=5)
        ends = [*self.marks[1:], time.perf_counter()]
        return [(rss, anon, end - start) for (rss, anon), start, end in zip(self.phases, self.marks, ends, strict=True)]


def run_measured(command: list[str], phase_line: str | None = None) -> tuple[list[tuple[int, int, float]], str]:
    """Run a command from the repository root: (peak RSS, anonymous, seconds) per phase (a new one at phase_line),
    and its output."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = PeakMemory(process)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if phase_line and phase_line in line:
            peaks.mark()
    if process.wait() != 0:
        raise RuntimeError("".join(lines[-20:]))
    return peaks.join(), "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    source, out = work / "source", work / "model"
    source.mkdir(parents=True, exist_ok=True)
    print(f"writing a random bfloat16 Llama-3.2-{args.shape.upper()}-shaped checkpoint into {source} ...", flush=True)
    source_bytes = write_checkpoint(source, SHAPES[args.shape])

    script = [sys.executable, "-m", "scripts.prepare_model_fp16", str(source), "--out", str(out), "--device", "cpu"]
    (convert, check), output = run_measured([*script, "--force"], phase_line="; checking on")
    relative = float(re.search(r"relative error (\S+)", output)[1])
    fp16_bytes = json.loads((out / "fp16" / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
    (baseline,), _ = run_measured(
        [sys.executable, "-c", BASELINE, str(source), str(out / "fp16"), str(out / "tokenizer")]
    )

    gb = 1e9
    rows = [
        ("make model: conversion", *convert),
        ("make model: check (one model at a time)", *check),
        ("baseline: check holding both models (float32 reference)", *baseline),
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        f"## make model: peak memory, Llama-3.2-{args.shape.upper()} shape ({when})",
        "",
        f"Machine: {machine_description()}. `python -m bench.prepare_model_memory --shape {args.shape}`: a random "
        f"bfloat16 checkpoint ({source_bytes / gb:.2f} GB) converted to FP16 ({fp16_bytes / gb:.2f} GB, 2 GB "
        "shards) and checked on the CPU; each run in a fresh process, its resident memory sampled every 20 ms "
        "(anonymous: without the pages of memory-mapped weight files, which the kernel can drop).",
        "",
        "| run | peak RSS GB | peak anonymous GB | anonymous / FP16 size | anonymous / baseline | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, rss, anon, took in rows:
        text.append(
            f"| {label} | {rss / gb:.2f} | {anon / gb:.2f} | {anon / fp16_bytes:.2f} | {anon / baseline[1]:.2f} | "
            f"{took:.0f} |"
        )
    text += ["", f"- Check: relative error of the FP16 logits {relative:.2e} (random weights; tolerance 0.02).", ""]
    print("\n".join(text))
    record("\n".join(text))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
