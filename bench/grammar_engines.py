"""The two grammar engines a response_format could use, on the bench model's tokenizer: llguidance (what the worker
uses) against xgrammar, each in a fresh process.

`python -m bench.grammar_engines [--no-record]` builds the bench model, then times each engine in a process of its
own: building its view of the tokenizer, compiling bench/schema_cost.py's schema (fresh each time, the median of
5), and 32 requests walking that schema for 64 steps, as the batch does: each step fills the request's token mask,
applies it to a row of random logits, takes the row's best token and feeds it back. It prints the figures of
both, their ratios, and the engines' wheel sizes when their wheels are in `--wheels DIR`; the figures are appended
to bench/RESULTS.md unless --no-record.
xgrammar is not one of the service's requirements: install it (`pip install xgrammar`) where this bench runs, or it
is reported as not installed. `python -m bench.grammar_engines --one llguidance|xgrammar` is one such process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.results import machine_description, report
from bench.run_bench import CACHE, build_bench_model, run_json_process
from bench.schema_cost import RECORDS

ENGINES = ("llguidance", "xgrammar")
REQUESTS = 32
STEPS = 64
COMPILES = 5


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    folder = model_dir / "tokenizer" if (model_dir / "tokenizer").is_dir() else model_dir
    return AutoTokenizer.from_pretrained(folder)


class _Llguidance:
    def __init__(self, hf_tokenizer) -> None:
        import llguidance.hf
        import llguidance.torch

        self.torch_ops = llguidance.torch
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer)
        self.vocab_size = self.tokenizer.vocab_size

    def compile(self, schema: dict):
        from llguidance import LLMatcher

        return LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})

    def matcher(self, compiled):
        from llguidance import LLMatcher

        return LLMatcher(self.tokenizer, compiled)

    def bitmask(self):
        return self.torch_ops.allocate_token_bitmask(1, self.vocab_size)

    def fill(self, matcher, bitmask) -> None:
        self.torch_ops.fill_next_token_bitmask(matcher, bitmask, 0)

    def apply(self, logits, bitmask) -> None:
        self.torch_ops.apply_token_bitmask_inplace(logits, bitmask)

    def feed(self, matcher, token: int) -> None:
        matcher.consume_token(token)

    def done(self, matcher) -> bool:
        return matcher.is_stopped()


class _Xgrammar:
    def __init__(self, hf_tokenizer) -> None:
        import xgrammar

        self.xgr = xgrammar
        self.info = xgrammar.TokenizerInfo.from_huggingface(hf_tokenizer)
        self.vocab_size = self.info.vocab_size
        self.compiler = xgrammar.GrammarCompiler(self.info, cache_enabled=False)

    def compile(self, schema: dict):
        return self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)

    def matcher(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def bitmask(self):
        return self.xgr.allocate_token_bitmask(1, self.vocab_size)

    def fill(self, matcher, bitmask) -> None:
        matcher.fill_next_token_bitmask(bitmask, 0)

    def apply(self, logits, bitmask) -> None:
        self.xgr.apply_token_bitmask_inplace(logits, bitmask)

    def feed(self, matcher, token: int) -> None:
        matcher.accept_token(token)

    def done(self, matcher) -> bool:
        return matcher.is_terminated()


def one(engine_name: str) -> dict:
    """Time one engine in this process."""
    import torch

    torch.manual_seed(0)
    hf_tokenizer = _tokenizer(build_bench_model())
    started = time.perf_counter()
    engine = (_Llguidance if engine_name == "llguidance" else _Xgrammar)(hf_tokenizer)
    tokenizer_s = time.perf_counter() - started
    compile_s = []
    for _ in range(COMPILES):
        # A grammar is compiled against the tokenizer by the time its first matcher exists (llguidance defers it
        # to the matcher; xgrammar does it in the compiler): both are timed up to there.
        started = time.perf_counter()
        engine.matcher(engine.compile(RECORDS))
        compile_s.append(time.perf_counter() - started)
    compiled = engine.compile(RECORDS)
    matchers = [engine.matcher(compiled) for _ in range(REQUESTS)]
    bitmasks = [engine.bitmask() for _ in range(REQUESTS)]
    spent = {"fill": 0.0, "own_apply": 0.0, "worker_apply": 0.0}
    steps = 0
    for _ in range(STEPS):
        for matcher, bitmask in zip(matchers, bitmasks, strict=True):
            if engine.done(matcher):
                continue
            logits = torch.randn(1, engine.vocab_size)
            started = time.perf_counter()
            engine.fill(matcher, bitmask)
            filled = time.perf_counter()
            engine.apply(logits.clone(), bitmask)
            applied = time.perf_counter()
            _worker_apply(logits[0], bitmask[0], engine.vocab_size)
            spent["fill"] += filled - started
            spent["own_apply"] += applied - filled
            spent["worker_apply"] += time.perf_counter() - applied
            engine.feed(matcher, int(logits.argmax()))
            steps += 1
    return {
        "engine": engine_name,
        "vocab_size": engine.vocab_size,
        "tokenizer_ms": 1000 * tokenizer_s,
        "compile_ms": 1000 * statistics.median(compile_s),
        "fill_ms": 1000 * spent["fill"] / steps,
        "own_apply_ms": 1000 * spent["own_apply"] / steps,
        "worker_apply_ms": 1000 * spent["worker_apply"] / steps,
        "request_steps": steps,
    }


def _worker_apply(row, bitmask, vocab_size: int) -> None:
    """The worker's own masking of one row (worker/grammar.py's): unpack the 32-bit words, -inf where a bit is 0."""
    import torch

    shifts = torch.arange(32, dtype=torch.int32)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).reshape(-1)[:vocab_size].bool()
    row[: allowed.numel()].masked_fill_(~allowed, float("-inf"))


def _wheel_sizes(folder: Path | None) -> dict[str, float]:
    """Each engine's wheel size in MB, from the wheels in `folder` (pip download ... -d folder)."""
    if folder is None:
        return {}
    sizes = {}
    for wheel in folder.glob("*.whl"):
        name = wheel.name.split("-")[0].replace("_", "-")
        sizes[name] = wheel.stat().st_size / 1e6
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=ENGINES)
    parser.add_argument("--wheels", type=Path, help="a folder holding the engines' wheels, to report their sizes")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    build_bench_model()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rows = {}
    for engine in ENGINES:
        try:
            rows[engine] = run_json_process("bench.grammar_engines", ["--one", engine], env, f"grammar_{engine}.log")
        except RuntimeError as error:
            print(f"{engine}: {error}", file=sys.stderr)
    sizes = _wheel_sizes(args.wheels)
    lines = [
        f"## grammar engines {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}\n",
        f"`python -m bench.grammar_engines`: the bench model's tokenizer "
        f"(vocabulary {rows['llguidance']['vocab_size']:,}), "
        f"bench/schema_cost.py's schema, {REQUESTS} requests x {STEPS} steps of fill mask + apply to a row of random "
        "logits + feed the row's best token, each engine in a fresh process; times per request and step:\n",
        "| engine | wheel MB | tokenizer view ms | schema compile ms (median of 5) | fill mask ms | its own apply ms "
        "| the worker's apply ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for engine in ENGINES:
        row = rows.get(engine)
        if row is None:
            lines.append(f"| {engine} | - | not installed here | - | - | - | - |")
            continue
        size = f"{sizes[engine]:.1f}" if engine in sizes else "-"
        lines.append(
            f"| {engine} | {size} | {row['tokenizer_ms']:.1f} | {row['compile_ms']:.2f} | {row['fill_ms']:.4f} | "
            f"{row['own_apply_ms']:.4f} | {row['worker_apply_ms']:.4f} |"
        )
    if len(rows) == len(ENGINES):
        ours, other = rows["llguidance"], rows["xgrammar"]
        lines.append(
            f"\nRatio llguidance / xgrammar: fill mask {ours['fill_ms'] / other['fill_ms']:.2f}, schema compile "
            f"{ours['compile_ms'] / other['compile_ms']:.2f} (per request and step, ms; the worker fills with its "
            "engine and masks with its own unpacking, the last column).\n"
        )
    text = "\n".join(lines) + "\n"
    return report(text, keep=not args.no_record)


if __name__ == "__main__":
    sys.exit(main())
