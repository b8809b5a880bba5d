"""How one job picks its tokens, decided once from its input: both engines read this plan, never the raw input.

Each option has one meaning of "off" here (`top_k` None, `top_p` 1, no penalty); each engine's own spelling of it
(the batch's `top_k` of the vocabulary, transformers' `top_k=0`, a warper left out) is written beside it below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from core.jobs.model import JobInput
from core.jobs.response_format import grammar_of
from worker.grammar import Grammars
from worker.request_rules import HoldEnd, Penalties, SequenceRulesProcessor, TokenRule


@dataclass(frozen=True)
class SamplingPlan:
    """Greedy or sampled, with which warpers, seeded or not, how long, and whether EOS ends it."""

    max_new_tokens: int
    # Temperature 0 means greedy decoding, as OpenAI clients expect; so does do_sample false.
    greedy: bool
    temperature: float
    top_p: float
    top_k: int | None
    repetition_penalty: float | None
    seed: int | None
    ignore_eos: bool
    # Per-request rules on the logits (worker/request_rules.py); 0 / 0 / 0 / () are "off".
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_tokens: int = 0
    stop_token_ids: tuple[int, ...] = ()
    # The response_format's grammar (llguidance's JSON), None for plain text: the last rule, a mask.
    grammar: str | None = None
    # Log probabilities (worker/logprobs.py): how many alternatives (None: none asked), and the prompt's too.
    logprobs: int | None = None
    prompt_logprobs: bool = False

    @classmethod
    def of(cls, params: JobInput) -> SamplingPlan:
        """The plan for a job's (already valid) input."""
        return cls(
            max_new_tokens=params.max_tokens,
            greedy=not params.do_sample or params.temperature == 0.0,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            repetition_penalty=params.repetition_penalty,
            seed=params.seed,
            ignore_eos=params.ignore_eos,
            presence_penalty=params.presence_penalty or 0.0,
            frequency_penalty=params.frequency_penalty or 0.0,
            min_tokens=params.min_tokens or 0,
            stop_token_ids=tuple(params.stop_token_ids or ()),
            grammar=grammar_of(params.response_format) if params.response_format is not None else None,
            logprobs=params.logprobs,
            prompt_logprobs=bool(params.echo) and params.logprobs is not None,
        )

    @property
    def private_rng(self) -> bool:
        """Sampled with the job's own generator (its seed), not the process's shared one."""
        return self.seed is not None and not self.greedy

    @property
    def needs_sequential_path(self) -> bool:
        """What the batch can't apply per request: a private RNG seed, a repetition penalty, the prompt's logprobs
        (a forward pass of its own)."""
        return self.seed is not None or self.repetition_penalty is not None or self.prompt_logprobs

    @property
    def has_token_rules(self) -> bool:
        """Some per-request logits rule is on (worker/request_rules.py): penalties, min_tokens, a grammar."""
        return bool(self.presence_penalty or self.frequency_penalty or self.min_tokens or self.grammar)

    def end_token_ids(self, eos_token_ids: list[int]) -> list[int]:
        """The ids that end this job: the model's EOS (unless ignore_eos) and its own stop token ids."""
        ends = [] if self.ignore_eos else list(eos_token_ids)
        return ends + [i for i in self.stop_token_ids if i not in ends]

    def token_rules(self, eos_token_ids: list[int], grammars: Grammars | None = None) -> list[TokenRule]:
        """This job's per-request logits rules, in the order they apply; empty when none is on.

        A grammar's rule holds the job's matcher: call once per run of the job (`grammars` builds it).
        """
        rules: list[TokenRule] = []
        if self.presence_penalty or self.frequency_penalty:
            rules.append(Penalties(self.presence_penalty, self.frequency_penalty))
        ends = self.end_token_ids(eos_token_ids)
        if self.min_tokens and ends:
            rules.append(HoldEnd(self.min_tokens, tuple(ends)))
        if self.grammar is not None:
            if grammars is None:
                raise ValueError("a job with a response_format needs the worker's grammars")
            # Last: it sees the penalised scores and leaves only what the grammar allows.
            rules.append(grammars.rule(self.grammar, ends))
        return rules

    def batch_request(self, vocab_size: int, eos_token_ids: list[int]) -> dict[str, object]:
        """The continuous-batching manager's per-request arguments: length, end and sampling."""
        ends = self.end_token_ids(eos_token_ids)
        request: dict[str, object] = {
            "max_new_tokens": self.max_new_tokens,
            # -1 is an id no token has: with ignore_eos (and no stop token ids) nothing ends the job before its budget.
            "eos_token_id": ends or -1,
        }
        if self.greedy:
            # The batch always samples: keeping only the most likely token makes that greedy.
            return request | {"temperature": 1.0, "top_p": 1.0, "top_k": 1}
        return request | {
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            # The whole vocabulary is the batch's "no top-k".
            "top_k": int(min(self.top_k or vocab_size, vocab_size)),
        }

    def generation_config(self, eos_token_ids: list[int], pad_token_id: int | None) -> GenerationConfig:
        """transformers' config for one `model.generate` of this job."""
        # A seeded job samples in SeededSampler; transformers itself then only takes the one token left.
        sampling = not self.greedy and not self.private_rng
        # With stop token ids, ignore_eos is a rule (EOS held back) so that those ids still end the job.
        ignore_eos_as_min_length = self.ignore_eos and not self.stop_token_ids
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            # ignore_eos: EOS is masked until the budget is spent, so every job has its full length.
            min_new_tokens=self.max_new_tokens if ignore_eos_as_min_length else None,
            do_sample=sampling,
            temperature=self.temperature if sampling else None,
            top_p=self.top_p if sampling else None,
            # 0 switches top-k off; otherwise the model's default (often 50) would apply unasked.
            top_k=(self.top_k or 0) if sampling else None,
            repetition_penalty=self.repetition_penalty,
            eos_token_id=self.end_token_ids(eos_token_ids) if self.stop_token_ids else eos_token_ids,
            pad_token_id=pad_token_id,
        )

    def logits_processors(
        self, device: str, eos_token_ids: list[int], prompt_len: int, grammars: Grammars | None = None
    ) -> LogitsProcessorList:
        """The processors `model.generate` runs for this job beside its config (transformers puts them before its
        own temperature/top-k/top-p): the job's rules, then the seeded sampler, if seeded."""
        processors = LogitsProcessorList()
        rules = self.token_rules(eos_token_ids, grammars)
        if self.ignore_eos and self.stop_token_ids:
            # ignore_eos beside stop token ids: EOS never ends the job, the stop ids still do.
            held = tuple(i for i in eos_token_ids if i not in self.stop_token_ids)
            rules.append(HoldEnd(self.max_new_tokens, held))
        if rules:
            processors.append(SequenceRulesProcessor(rules, prompt_len))
        if self.private_rng:
            processors.append(SeededSampler(self, device))
        return processors

    def warpers(self) -> LogitsProcessorList:
        """Temperature, then top-k and top-p where they are on: what a sampled step applies to the logits."""
        warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(self.temperature)]
        if self.top_k:
            warpers.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(self.top_p))
        return LogitsProcessorList(warpers)


class SeededSampler(LogitsProcessor):
    """Samples with the job's own RNG, so a seed reproduces its text whatever else runs in the process.

    transformers samples from the global RNG, which other threads (the batch) draw from too. This processor
    applies the job's temperature/top-k/top-p, draws the token from a private generator, and leaves only that
    token possible; generation then runs greedy and picks it.
    """

    def __init__(self, plan: SamplingPlan, device: str) -> None:
        self.generator = torch.Generator(device=device).manual_seed(plan.seed)
        self.warpers = plan.warpers()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probabilities = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        chosen = torch.multinomial(probabilities, 1, generator=self.generator)
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter_(1, chosen, 0.0)
