"""The sweep's reference, in a process of its own: plain `generate` with the worker's model load, no batching.

`python -m bench.plain_baseline --out FILE --shape gpu|tiny` reads the worker's settings from the environment
(MODEL_DIR, DEVICE, DTYPE), loads the model with the worker's code and writes, step by step: the first greedy tokens
of each sweep prompt (what every engine variant must reproduce), then the seed-style baseline, one sampled
`generate` at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.sweep_workload import GPU_SHAPE, GREEDY_PROMPTS, TINY_SHAPE, FiguresFile, greedy_prompt, timed_prompt
from bench.workload import percentile
from core.jobs.model import GenerationInput
from core.settings import Settings
from worker.generation import PromptEncoder, context_tokens, eos_token_ids
from worker.model_loading import choose_device, load_model


def plain_generate(loaded, input_ids: list[int], new_tokens: int, eos_ids: list[int], **sampling) -> list[int]:
    """One plain `generate` of up to `new_tokens` tokens; the new token ids."""
    ids = torch.tensor([input_ids], device=loaded.model.device)
    with torch.inference_mode():
        output = loaded.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            eos_token_id=eos_ids,
            pad_token_id=loaded.tokenizer.pad_token_id,
            **sampling,
        )
    return output[0, ids.shape[1] :].tolist()


def main() -> int:
    """Write the greedy reference, then the baseline's figures, to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shape", choices=("gpu", "tiny"), default="gpu")
    args = parser.parse_args()
    shape = TINY_SHAPE if args.shape == "tiny" else GPU_SHAPE
    settings = Settings()
    loaded = load_model(settings, choose_device(settings.device))
    figures = FiguresFile(args.out, load_s=loaded.load_seconds, device=loaded.device.torch_device)
    encoder = PromptEncoder(loaded.tokenizer, context_tokens(loaded.model))
    eos_ids = eos_token_ids(loaded.model, loaded.tokenizer)

    def encode(prompt: str, max_tokens: int) -> list[int]:
        return encoder.encode(GenerationInput(prompt=prompt, max_tokens=max_tokens))

    greedy = [
        plain_generate(
            loaded, encode(greedy_prompt(n), shape.greedy_tokens), shape.greedy_tokens, eos_ids, do_sample=False
        )
        for n in range(GREEDY_PROMPTS)
    ]
    figures.add(greedy_tokens=greedy)
    sampled = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "min_new_tokens": shape.new_tokens}
    prompt_ids = encode(timed_prompt(0), shape.new_tokens)
    plain_generate(loaded, prompt_ids, 4, eos_ids, do_sample=False)  # warm-up
    seconds = []
    for _ in range(shape.baseline_jobs):
        started = time.perf_counter()
        plain_generate(loaded, prompt_ids, shape.new_tokens, eos_ids, **sampled)
        seconds.append(time.perf_counter() - started)
    figures.add(
        baseline={
            "jobs": shape.baseline_jobs,
            "tokens_per_s": shape.new_tokens * shape.baseline_jobs / sum(seconds),
            "ms_per_token_p50": 1000 * percentile(seconds, 0.5) / shape.new_tokens,
        },
        done=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
