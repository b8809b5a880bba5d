"""llguidance's view of the model's tokenizer, for every tokenizer family a model may bring.

llguidance reads a fast tokenizer's JSON itself, with the decoders it knows: byte-level BPE (Llama 3, Qwen, GPT-2)
and the Replace/ByteFallback/Strip sequence of SentencePiece models converted the older way (Llama 2, Mistral).
Newer conversions of SentencePiece models spell that same decoding as one Metaspace decoder, which llguidance
refuses: such a tokenizer is given to it with the Metaspace decoder written out as the sequence it knows (the
same text for every token). A tokenizer it still can't read (a slow, Python-only one: llguidance needs the Rust
tokenizer's JSON) makes every JSON-output job fail with a clear message, never the worker.
"""

from __future__ import annotations

import copy
import json
import logging

import llguidance
import llguidance.hf
from transformers import PreTrainedTokenizerFast

log = logging.getLogger("llm.worker")


class UnsupportedTokenizer(Exception):
    """llguidance can't read this model's tokenizer, so its output can't be held to a grammar."""


def lltokenizer_of(hf_tokenizer) -> llguidance.LLTokenizer:
    """llguidance's tokenizer for this transformers tokenizer (about 10 ms for the demo model, a second or two for a
    large vocabulary); UnsupportedTokenizer, naming why, when there is none."""
    if not isinstance(hf_tokenizer, PreTrainedTokenizerFast):
        raise UnsupportedTokenizer("llguidance needs a fast tokenizer (a tokenizer.json), this one is Python-only")
    try:
        return llguidance.hf.from_tokenizer(hf_tokenizer)
    except ValueError as error:
        refusal = error
    tokenizer_json = json.loads(_backend_json(hf_tokenizer))
    decoder = metaspace_written_out(tokenizer_json.get("decoder"))
    if decoder is None:
        raise UnsupportedTokenizer(f"llguidance can't read this tokenizer: {refusal}") from refusal
    log.info("the tokenizer's Metaspace decoder is given to llguidance as the sequence it reads")
    tokenizer_json["decoder"] = decoder
    try:
        return llguidance.LLTokenizer(json.dumps(tokenizer_json), eos_token=hf_tokenizer.eos_token_id)
    except ValueError as error:
        raise UnsupportedTokenizer(f"llguidance can't read this tokenizer: {error}") from error


def metaspace_written_out(decoder: dict | None) -> dict | None:
    """The decoder with each Metaspace step written as Replace(▁ -> space), ByteFallback and Fuse, and the leading
    space it drops as a final Strip; None when it has no Metaspace step."""
    steps = decoder.get("decoders", []) if decoder and decoder.get("type") == "Sequence" else [decoder]
    if not any(step and step.get("type") == "Metaspace" for step in steps):
        return None
    written: list[dict] = []
    strips_start = False
    for step in steps:
        if step.get("type") != "Metaspace":
            written.append(step)
            continue
        written += [
            {"type": "Replace", "pattern": {"String": step.get("replacement", "\u2581")}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ]
        # A Metaspace that put a space before the text (prepend_scheme first or always) takes it off again.
        strips_start = strips_start or step.get("prepend_scheme", "always") != "never"
    if strips_start:
        written.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {"type": "Sequence", "decoders": written}


def _backend_json(fast: PreTrainedTokenizerFast) -> str:
    """The Rust tokenizer's JSON, added tokens included, with no padding or truncation (as llguidance reads it)."""
    backend = copy.copy(fast.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    return backend.to_str()
