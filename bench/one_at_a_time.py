"""The baseline, in a process of its own: one plain `model.generate` at a time, no batching, no queue.

`python -m bench.one_at_a_time --model-dir DIR --jobs N` prints tokens/s, latency percentiles and the parameter
count as JSON on stdout's last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.workload import NEW_TOKENS, PROMPT, percentile


def one_at_a_time(model_dir: Path, jobs: int) -> dict:
    """`jobs` sampled generations of NEW_TOKENS tokens, one after the other: tokens/s and per-job latency."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(model_dir / "fp16", dtype=torch.float32).eval()
    input_ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    kwargs = dict(
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=True,
        temperature=0.7,
        top_p=0.9,
        top_k=0,
        pad_token_id=tokenizer.pad_token_id,
    )
    latencies = []
    with torch.inference_mode():
        model.generate(input_ids, **(kwargs | {"max_new_tokens": 4, "min_new_tokens": 4}))  # warm-up
        for _ in range(jobs):
            started = time.perf_counter()
            model.generate(input_ids, **kwargs)
            latencies.append(time.perf_counter() - started)
    return {
        "jobs": jobs,
        "tokens_per_s": NEW_TOKENS * jobs / sum(latencies),
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": model.config.vocab_size,
    }


def main() -> int:
    """Run the baseline; the JSON figures are stdout's last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(one_at_a_time(args.model_dir, args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
