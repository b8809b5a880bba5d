"""Logprob capture (worker/logprobs.py): rows mapped to requests as they join and leave, tokens resolved late."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from worker.logprobs import LogprobsCapture, SequenceLogprobs, as_records, install, prompt_logprobs
from worker.request_rules import install as install_rules


def row_request(request_id: str, generated: list[int]) -> SimpleNamespace:
    """What the manager hands `prepare_tensor_args` for one row: a future state with the request's state."""
    return SimpleNamespace(state=SimpleNamespace(request_id=request_id, generated_tokens=generated))


def logits(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows)


def step(capture: LogprobsCapture, requests: list[SimpleNamespace], scores: torch.Tensor) -> torch.Tensor:
    """One batch step as the manager runs it: rows prepared, then the processor called on the logits."""
    return capture(scores, capture.prepare_tensor_args(requests))


def test_each_row_is_kept_for_its_own_request_and_resolved_when_its_token_is_known():
    capture = LogprobsCapture()
    capture.register("a", top=2)
    capture.register("c", top=0)
    a, b, c = [], [], []
    first = logits([2.0, 1.0, 0.0], [5.0, 5.0, 5.0], [0.0, 0.0, 3.0])
    unchanged = step(capture, [row_request("a", a), row_request("b", b), row_request("c", c)], first.clone())
    assert torch.equal(unchanged, first)  # the capture never edits the logits
    a.append(0), b.append(1), c.append(2)  # the tokens sampled from that step
    # Next step: "b" left, "c" runs; "a" joined a later row. Step one's tokens resolve as the step is prepared.
    step(capture, [row_request("c", c), row_request("a", a)], logits([0.0, 0.0, 0.0], [0.0, 9.0, 0.0]))
    a.append(1), c.append(0)
    expected_a0 = torch.log_softmax(first[0], -1)
    assert capture.finish("c", c) == [
        (2, pytest.approx(torch.log_softmax(first[2], -1)[2].item()), []),
        (0, pytest.approx(torch.log_softmax(torch.zeros(3), -1)[0].item()), []),
    ]
    entries = capture.finish("a", a)
    assert [token for token, _, _ in entries] == [0, 1]
    assert entries[0][1] == pytest.approx(expected_a0[0].item())
    assert [i for i, _ in entries[0][2]] == [0, 1]  # top 2, most likely first
    assert entries[1][2][0][0] == 1 and entries[1][1] == pytest.approx(entries[1][2][0][1])
    assert capture.finish("b", b) is None and capture.capturing() == 0


def test_a_step_without_asking_requests_costs_no_softmax(monkeypatch):
    capture = LogprobsCapture()
    capture.register("x", top=1)

    def refuse(*args):
        raise AssertionError("a step with no asking row computed logprobs")

    monkeypatch.setattr("worker.logprobs.capture_step", refuse)
    step(capture, [row_request("y", []), row_request("z", [])], logits([1.0, 2.0], [0.0, 0.0]))
    assert capture.finish("x", []) == []


def test_a_request_that_leaves_before_its_last_token_is_known_keeps_only_resolved_tokens():
    capture = LogprobsCapture()
    capture.register("a", top=1)
    generated: list[int] = []
    step(capture, [row_request("a", generated)], logits([0.0, 1.0]))
    # Canceled before any output: no token, so no logprob.
    assert capture.finish("a", generated) == []


def test_the_sequence_capture_reads_the_raw_output_embeddings_and_resolves_each_token(loaded_model):
    model = loaded_model.model
    prompt = [5, 6, 7]
    capture = SequenceLogprobs(model, top=3, prompt_len=len(prompt))
    with torch.inference_mode():
        output = model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, 3, dtype=torch.long),
            max_new_tokens=3,
            do_sample=False,
            repetition_penalty=5.0,  # transformers' own processor: the capture must not see its edits
            stopping_criteria=[capture],
        )
    capture.close()
    generated = output[0, 3:].tolist()
    entries = capture.finish(generated)
    assert [token for token, _, _ in entries] == generated
    # Against one plain forward pass over the whole text: the same raw logprobs.
    scored = prompt_logprobs(model, prompt + generated, 3)
    for entry, raw in zip(entries, scored[len(prompt) :], strict=True):
        assert entry[1] == pytest.approx(raw[1], abs=1e-4)
        assert [i for i, _ in entry[2]] == [i for i, _ in raw[2]]


def test_prompt_logprobs_have_none_for_the_first_token_and_records_name_every_token(loaded_model):
    scored = prompt_logprobs(loaded_model.model, [5, 6, 7], 1)
    assert scored[0] is None and len(scored) == 3 and all(entry[1] < 0 for entry in scored[1:])
    records = as_records(loaded_model.tokenizer, scored, [5, 6, 7])
    assert records[0] == {"token_id": 5, "token": loaded_model.tokenizer.decode([5]), "logprob": None, "top": []}
    assert len(records[1]["top"]) == 1 and records[1]["top"][0]["token"] == loaded_model.tokenizer.decode(
        [records[1]["top"][0]["token_id"]]
    )


def test_install_puts_the_capture_before_the_rules_so_it_sees_raw_logits(bare_manager):
    processors = bare_manager.logit_processor
    before = processors.tensors_required
    rules = install_rules(bare_manager)
    capture = install(bare_manager)
    assert processors.logits_processor[:2] == [capture, rules]
    assert processors.tensors_required == before + 2 and processors.do_processing
