"""Per-request logits rules (worker/request_rules.py): each rule on one row, and the batch's row-to-request map."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor

from worker.request_rules import HoldEnd, Penalties, RequestRulesProcessor, SequenceRulesProcessor, install


def row_request(request_id: str, generated: list[int]) -> SimpleNamespace:
    """What the manager hands `prepare_tensor_args` for one row: a future state with the request's state."""
    return SimpleNamespace(state=SimpleNamespace(request_id=request_id, generated_tokens=generated))


def test_penalties_follow_openai_presence_once_frequency_per_count():
    scores = torch.zeros(6)
    Penalties(presence=0.5, frequency=0.25).apply(scores, [1, 1, 1, 4])
    assert scores.tolist() == [0.0, -(0.5 + 0.75), 0.0, 0.0, -(0.5 + 0.25), 0.0]


def test_a_negative_penalty_favours_what_was_said():
    scores = torch.zeros(3)
    Penalties(presence=-1.0, frequency=0.0).apply(scores, [2])
    assert scores.tolist() == [0.0, 0.0, 1.0]


def test_hold_end_masks_the_end_ids_until_min_tokens():
    early, late = torch.zeros(5), torch.zeros(5)
    rule = HoldEnd(min_tokens=2, end_ids=(0, 3))
    rule.apply(early, [4])
    rule.apply(late, [4, 4])
    assert early.tolist() == [float("-inf"), 0.0, 0.0, float("-inf"), 0.0]
    assert late.tolist() == [0.0] * 5


def test_the_batch_processor_edits_only_the_rows_of_requests_with_rules():
    processor = RequestRulesProcessor()
    processor.register("b", [Penalties(presence=1.0, frequency=0.0)])
    processor.register("c", [HoldEnd(min_tokens=9, end_ids=(1,))])
    args = processor.prepare_tensor_args([row_request("a", [0]), row_request("b", [0]), row_request("c", [0])])
    assert args.tolist() == [0, 0, 0]
    scores = processor(torch.zeros(3, 3), args)
    assert scores.tolist() == [[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, float("-inf"), 0.0]]
    processor.forget("b")
    processor.forget("never-registered")
    assert processor.ruled() == 1


def test_the_sequence_processor_counts_only_tokens_after_the_prompt():
    processor = SequenceRulesProcessor([Penalties(presence=0.0, frequency=1.0)], prompt_len=2)
    scores = processor(torch.tensor([[1, 1, 2, 2, 2]]), torch.zeros(1, 3))
    assert scores.tolist() == [[0.0, 0.0, -3.0]]


def test_install_puts_the_processor_first_and_asks_one_more_argument_row(bare_manager):
    """Fails if transformers' continuous-batching processor list moves: the engine relies on these internals."""
    manager = bare_manager
    processors = manager.logit_processor
    before = processors.tensors_required
    rules = install(manager)
    assert processors.logits_processor[0] is rules and isinstance(rules, ContinuousBatchingLogitsProcessor)
    assert processors.tensors_required == before + 1 and processors.do_processing
