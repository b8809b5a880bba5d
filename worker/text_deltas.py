"""A job's generated tokens turned into text deltas that are final: whole characters, nothing a stop string cuts.

Decoding runs on the new tokens only (with the few before them as context), so a job's cost per step does not grow
with its length. What is published concatenates exactly to the job's `output.text`:

- a multi-byte character split across tokens decodes to U+FFFD until its last byte arrives: the text waits;
- with stop strings, the last (longest stop - 1) characters wait, since a stop may begin there and would cut them;
  a stop that appears ends the text before it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("llm.worker")

_INCOMPLETE = "\ufffd"  # what the tokenizer decodes an unfinished UTF-8 sequence to


class TextDeltas:
    """The text of one job's tokens so far, and which of it is final (for one attempt)."""

    def __init__(self, tokenizer, stops: list[str] | None) -> None:
        self.tokenizer = tokenizer
        self.stops = stops or []
        self.held_back = max((len(stop) for stop in self.stops), default=1) - 1
        self.text = ""  # every whole character decoded so far
        self.emitted = 0  # characters of `text` already given out as deltas
        self.stopped = False
        self._prefix = 0  # tokens before `_read` kept as decoding context
        self._read = 0  # tokens already turned into `text`
        self.covered = 0  # tokens whose text has all been given out (their logprobs can go with it)

    def update(self, tokens: list[int]) -> str:
        """The new final text, given every token the job has so far."""
        if self.stopped or len(tokens) <= self._read:
            return ""
        context = self._decode(tokens[self._prefix : self._read])
        decoded = self._decode(tokens[self._prefix :])
        if len(decoded) > len(context) and not decoded.endswith(_INCOMPLETE):
            self.text += decoded[len(context) :]
            self._prefix, self._read = self._read, len(tokens)
        delta = self._take_final()
        if self.emitted == len(self.text) and not self.stopped:
            self.covered = self._read
        return delta

    def finish(self, final_text: str) -> str:
        """What the job's final text adds to what was given out (the engine's text is the truth)."""
        given = self.text[: self.emitted]
        self.stopped = True
        if not final_text.startswith(given):
            log.warning("streamed text diverged from the final text; the rest of it is not streamed")
            return ""
        self.emitted = len(final_text)
        return final_text[len(given) :]

    def _take_final(self) -> str:
        end = len(self.text) - self.held_back
        if self.stops:
            # Text given out never holds a stop, and a stop never begins before its end (it was held back).
            positions = [self.text.find(stop, self.emitted) for stop in self.stops]
            found = [position for position in positions if position >= 0]
            if found:
                end = min(found)
                self.stopped = True
        if end <= self.emitted:
            return ""
        delta, self.emitted = self.text[self.emitted : end], end
        return delta

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True) if tokens else ""
