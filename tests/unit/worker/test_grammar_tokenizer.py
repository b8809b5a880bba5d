"""llguidance's view of tokenizers of other families than the demo model's (worker/grammar_tokenizer.py): each
built here from the demo corpus, as a model the service has never seen would bring it."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from scripts.make_demo_model import CORPUS_DIR
from tests.unit.worker.test_grammar import follows_person, person_grammar, walk
from worker.generation import EngineInputError
from worker.grammar import Grammars
from worker.grammar_tokenizer import UnsupportedTokenizer, lltokenizer_of, metaspace_written_out

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def prose() -> list[str]:
    """The demo corpus's lines: prose, without a `{`."""
    return [line for path in sorted(CORPUS_DIR.glob("*.txt")) for line in path.read_text("utf-8").splitlines()]


def corpus() -> list[str]:
    """The demo corpus, and some JSON: a vocabulary without `{` can't spell JSON, whatever the grammar engine."""
    return prose() + [json.dumps({"name": name, "age": age, "kind": "cat"}) for name, age in (("Mi", 3), ("Tý", 12))]


def as_transformers(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def metaspace_tokenizer() -> PreTrainedTokenizerFast:
    """A SentencePiece-style unigram tokenizer with a Metaspace decoder, as newer conversions write them (the
    leading ▁ of a word is its space; the decoder drops the text's first one)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(
        corpus(), trainers.UnigramTrainer(vocab_size=1200, special_tokens=SPECIALS, unk_token="<unk>")
    )
    return as_transformers(tokenizer)


def test_a_metaspace_tokenizer_holds_random_logits_to_the_schema(metaspace_tokenizer):
    # llguidance refuses this decoder when read as it is: the case this module exists for.
    with pytest.raises(ValueError, match="decoder"):
        import llguidance.hf

        llguidance.hf.from_tokenizer(metaspace_tokenizer)
    grammars = Grammars(metaspace_tokenizer)
    ends = [metaspace_tokenizer.eos_token_id]
    for seed in range(5):
        tokens, ended = walk(grammars.rule(person_grammar(), ends), len(metaspace_tokenizer), ends, seed)
        assert ended
        # The text a job returns (the generated tokens decoded alone) parses: no word-start space broke the JSON.
        assert follows_person(json.loads(metaspace_tokenizer.decode(tokens, skip_special_tokens=True)))


def test_the_written_out_decoder_gives_every_token_the_same_text(metaspace_tokenizer):
    """The sequence handed to llguidance decodes as the Metaspace decoder does (checked with the Rust tokenizer)."""
    written = Tokenizer.from_str(metaspace_tokenizer.backend_tokenizer.to_str())
    tokenizer_json = json.loads(written.to_str())
    tokenizer_json["decoder"] = metaspace_written_out(tokenizer_json["decoder"])
    written = Tokenizer.from_str(json.dumps(tokenizer_json))
    for text in ['{"name": "Mi", "age": 3}', "Hà Nội là thủ đô", "  two spaces", "x"]:
        ids = metaspace_tokenizer.encode(text, add_special_tokens=False)
        assert written.decode(ids) == metaspace_tokenizer.backend_tokenizer.decode(ids)
        assert all(
            written.decode(ids[:cut]) == metaspace_tokenizer.backend_tokenizer.decode(ids[:cut])
            for cut in range(1, len(ids))
        )


@pytest.mark.parametrize(
    ("decoder", "expected_types"),
    [
        ({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
         ["Replace", "ByteFallback", "Fuse", "Strip"]),
        ({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True},
         ["Replace", "ByteFallback", "Fuse"]),
        ({"type": "Sequence", "decoders": [{"type": "Metaspace", "replacement": "\u2581"}, {"type": "Fuse"}]},
         ["Replace", "ByteFallback", "Fuse", "Fuse", "Strip"]),
    ],
)  # fmt: skip
def test_each_metaspace_step_is_written_out(decoder, expected_types):
    written = metaspace_written_out(decoder)
    assert written["type"] == "Sequence"
    assert [step["type"] for step in written["decoders"]] == expected_types


def test_a_decoder_without_metaspace_is_left_to_llguidance():
    assert metaspace_written_out({"type": "ByteLevel"}) is None
    assert metaspace_written_out(None) is None


def test_a_tokenizer_llguidance_cant_read_fails_each_json_job_as_its_input_not_the_worker():
    """A WordPiece decoder (a BERT-style vocabulary) has no form llguidance reads: the refusal names it, and every
    JSON-output job gets it as an input error while the worker stays up."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=600, special_tokens=SPECIALS))
    wordpiece = as_transformers(tokenizer)
    with pytest.raises(UnsupportedTokenizer, match="can't read this tokenizer"):
        lltokenizer_of(wordpiece)
    grammars = Grammars(wordpiece)
    for _ in range(2):  # refused once, then answered from memory
        with pytest.raises(EngineInputError, match="response_format: this model's tokenizer can't be used"):
            grammars.rule(person_grammar(), [wordpiece.eos_token_id])
