"""The response_format grammar as a logits rule (worker/grammar.py), on the demo model's real tokenizer, alone and
inside both engines."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

from core.jobs.model import GenerationInput
from core.jobs.response_format import ResponseFormat, grammar_of
from core.settings import Settings
from tests.unit.worker.conftest import cpu_settings, save_tiny_model
from tests.unit.worker.test_batching_engine import run_together
from worker.generation import EngineFailed
from worker.grammar import Grammars, grammar_failure
from worker.model_loading import LoadedModel, choose_device, load_model

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "kind": {"enum": ["cat", "dog"]},
    },
    "required": ["name", "age", "kind"],
    "additionalProperties": False,
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


def follows_person(value) -> bool:
    """PERSON checked by hand (the jsonschema package is not a dependency)."""
    return (
        isinstance(value, dict)
        and set(value) == {"name", "age", "kind"}
        and isinstance(value["name"], str)
        and len(value["name"]) <= 12
        and type(value["age"]) is int
        and 0 <= value["age"] <= 120
        and value["kind"] in ("cat", "dog")
    )


@pytest.fixture(scope="module")
def grammars(loaded_model) -> Grammars:
    return Grammars(loaded_model.tokenizer)


def person_grammar() -> str:
    return grammar_of(ResponseFormat.model_validate(SCHEMA_FORMAT))


def walk(rule, width: int, end_ids: list[int], seed: int, max_steps: int = 200) -> tuple[list[int], bool]:
    """Pick the best token of random logits under the rule until an end id; the tokens and whether it ended."""
    generator = torch.Generator().manual_seed(seed)
    generated: list[int] = []
    for _ in range(max_steps):
        scores = torch.randn(width, generator=generator)
        rule.apply(scores, generated)
        token = int(scores.argmax())
        if token in end_ids:
            return generated, True
        generated.append(token)
    return generated, False


def test_random_logits_under_the_mask_spell_json_that_follows_the_schema(grammars, loaded_model):
    tokenizer = loaded_model.tokenizer
    ends = [tokenizer.eos_token_id]
    for seed in range(5):
        tokens, ended = walk(grammars.rule(person_grammar(), ends), len(tokenizer), ends, seed)
        assert ended
        assert follows_person(json.loads(tokenizer.decode(tokens, skip_special_tokens=True)))


def test_once_the_json_is_complete_only_the_end_ids_are_possible(grammars, loaded_model):
    tokenizer = loaded_model.tokenizer
    ends = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")]
    rule = grammars.rule(person_grammar(), ends)
    tokens = tokenizer('{"name":"Mi","age":3,"kind":"cat"}', add_special_tokens=False)["input_ids"]
    scores = torch.zeros(len(tokenizer))
    rule.apply(scores, tokens)
    assert torch.isfinite(scores).nonzero().flatten().tolist() == sorted(ends)


def test_logits_wider_than_the_vocabulary_never_pick_the_extra_columns(grammars, loaded_model):
    tokenizer = loaded_model.tokenizer
    rule = grammars.rule(person_grammar(), [tokenizer.eos_token_id])
    scores = torch.zeros(len(tokenizer) + 64)
    scores[len(tokenizer) :] = 100.0
    rule.apply(scores, [])
    assert not torch.isfinite(scores[len(tokenizer) :]).any()
    allowed = torch.isfinite(scores).nonzero().flatten().tolist()
    assert allowed and all(tokenizer.decode([token]).lstrip().startswith("{") for token in allowed)


def test_each_rule_has_its_own_matcher(grammars, loaded_model):
    """Two jobs with the same schema at different points of their JSON each get their own next tokens."""
    tokenizer = loaded_model.tokenizer
    ends = [tokenizer.eos_token_id]
    first, second = grammars.rule(person_grammar(), ends), grammars.rule(person_grammar(), ends)
    started, fresh = torch.zeros(len(tokenizer)), torch.zeros(len(tokenizer))
    first.apply(started, tokenizer('{"name":"', add_special_tokens=False)["input_ids"])
    second.apply(fresh, [])
    assert not torch.equal(torch.isfinite(started), torch.isfinite(fresh))


def schema_job(prompt: str, **extra) -> GenerationInput:
    return GenerationInput(prompt=prompt, response_format=SCHEMA_FORMAT, **{"max_tokens": 96, "temperature": 0} | extra)


def test_the_sequential_engine_writes_json_that_follows_the_schema_greedy_or_seeded(batching_engine):
    for params in (schema_job("A person:"), schema_job("A person:", temperature=1.0, seed=7)):
        result = batching_engine.sequential.generate(params)
        assert result.finish_reason == "stop"
        assert follows_person(json.loads(result.text))
    seeded = schema_job("A person:", temperature=1.0, seed=7)
    assert batching_engine.generate(seeded).text == batching_engine.sequential.generate(seeded).text


def test_schema_jobs_share_a_batch_step_with_plain_jobs_and_each_follows_its_own_format(batching_engine):
    rules = batching_engine._factory.request_rules
    steps: list[int] = []
    prepare = rules.prepare_tensor_args

    def watch(requests):
        args = prepare(requests)
        steps.append(sum(1 for row in rules._rows if row))
        return args

    jobs = [
        schema_job("Alice"),
        GenerationInput(prompt="Plain", max_tokens=24, temperature=0, ignore_eos=True),
        GenerationInput(prompt="Bob", max_tokens=96, temperature=0.9, response_format={"type": "json_object"}),
        schema_job("Carol", temperature=1.0),
    ]
    rules.prepare_tensor_args = watch
    try:
        results = run_together(batching_engine, jobs)
    finally:
        del rules.prepare_tensor_args
    assert max(steps) >= 2  # ruled rows beside each other (and beside the plain one) in one step
    assert results[1].completion_tokens == 24
    for index in (0, 3):
        assert results[index].finish_reason == "stop"
        assert follows_person(json.loads(results[index].text))
    if results[2].finish_reason == "stop":
        assert isinstance(json.loads(results[2].text), dict)
    assert rules.ruled() == 0


def test_schema_jobs_that_join_a_running_batch_and_leave_it_early_keep_their_own_rows(batching_engine):
    """A long plain job runs first; schema jobs join it mid-way, end at their own lengths, and each is valid."""
    joined = threading.Event()
    long_job = GenerationInput(prompt="Long", max_tokens=200, temperature=0, ignore_eos=True)
    results: dict[str, object] = {}

    def run_long() -> None:
        with batching_engine.slot(long_job, 3):
            results["long"] = batching_engine.generate(
                long_job, on_tokens=lambda tokens: len(tokens) >= 8 and joined.set()
            )

    runner = threading.Thread(target=run_long)
    runner.start()
    assert joined.wait(30)
    late = run_together(batching_engine, [schema_job(f"Late {i}", temperature=1.0) for i in range(3)])
    runner.join(60)
    assert results["long"].completion_tokens == 200 and results["long"].batch_size == 4  # they joined it
    assert all(result.finish_reason == "stop" and follows_person(json.loads(result.text)) for result in late)


def test_a_greedy_schema_job_is_the_same_in_the_batch_and_alone(batching_engine):
    params = schema_job("Same either way")
    batched = run_together(batching_engine, [params])[0]
    assert batched.text == batching_engine.sequential.generate(params).text


def test_a_rule_whose_matcher_stops_with_an_error_fails_its_job(grammars, loaded_model):
    """A token the grammar never allowed (here fed by hand) stops the matcher: the row keeps only the end ids, so
    the request ends at once, and the engine fails the job with the reason instead of answering `stop`."""
    tokenizer = loaded_model.tokenizer
    ends = [tokenizer.eos_token_id]
    rule = grammars.rule(person_grammar(), ends)
    healthy = grammars.rule(person_grammar(), ends)
    scores = torch.zeros(len(tokenizer))
    rule.apply(scores, tokenizer("plain words", add_special_tokens=False)["input_ids"])
    assert torch.isfinite(scores).nonzero().flatten().tolist() == ends
    failure = grammar_failure([healthy, rule])
    assert isinstance(failure, EngineFailed) and str(failure).startswith("response_format: the grammar engine stopped")
    assert grammar_failure([healthy]) is None


@pytest.fixture(scope="module")
def no_braces_model(tmp_path_factory) -> LoadedModel:
    """A tiny Llama whose unigram vocabulary (the demo corpus, which has no `{`) can't spell any JSON object."""
    from tests.unit.worker.test_grammar_tokenizer import SPECIALS, as_transformers, prose

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(
        prose(), trainers.UnigramTrainer(vocab_size=600, special_tokens=SPECIALS, unk_token="<unk>")
    )
    hf_tokenizer = as_transformers(tokenizer)
    assert hf_tokenizer.convert_ids_to_tokens(hf_tokenizer.encode("{", add_special_tokens=False)) == ["▁", "<unk>"]
    model_dir = save_tiny_model(tmp_path_factory.mktemp("no-braces"), hf_tokenizer, LlamaConfig, LlamaForCausalLM)
    return load_model(Settings(_env_file=None, model_dir=model_dir, device="cpu"), choose_device("cpu"))


def test_a_job_whose_text_cant_follow_its_schema_fails_in_both_engines(no_braces_model, tmp_path):
    from worker.batching_engine import BatchingEngine
    from worker.sequential_engine import SequentialEngine

    params = schema_job("A person:")
    with pytest.raises(EngineFailed, match="response_format: the grammar engine stopped"):
        SequentialEngine(no_braces_model).generate(params)
    engine = BatchingEngine(no_braces_model, cpu_settings(no_braces_model.paths.weights_dir.parent, tmp_path))
    try:
        with pytest.raises(EngineFailed, match="response_format: the grammar engine stopped"):
            engine.generate(params)
        assert engine.generate(GenerationInput(prompt="still serving", max_tokens=4)).completion_tokens >= 1
    finally:
        engine.shutdown()
