"""Stop strings over a growing list of generated tokens, decoding only the tail that a new stop could end in."""

from __future__ import annotations

# Byte-level BPE: a character is at most 4 bytes and a token at least one, so a stop string of n characters lies
# within the last 4n tokens; a few more tokens cover a character split across the window's edge.
_BYTES_PER_CHAR = 4
_EDGE_TOKENS = 4


class StopScanner:
    """Tells whether a stop string has appeared, at a cost per new token that does not grow with the text."""

    def __init__(self, tokenizer, stops: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.window_tokens = _BYTES_PER_CHAR * max((len(stop) for stop in stops), default=0) + _EDGE_TOKENS
        self._scanned = 0

    def seen(self, tokens: list[int]) -> bool:
        """Whether any stop string ends within the tokens added since the last call."""
        if not self.stops or len(tokens) <= self._scanned:
            return False
        # The tail starts far enough back to hold a stop string that ends in the newest tokens.
        start = max(0, self._scanned + 1 - self.window_tokens)
        self._scanned = len(tokens)
        tail = self.tokenizer.decode(tokens[start:], skip_special_tokens=True)
        return any(stop in tail for stop in self.stops)


def cut_at_first_stop(text: str, stops: list[str]) -> str:
    """The text before the earliest stop string."""
    positions = [text.find(stop) for stop in stops if stop in text]
    return text[: min(positions)] if positions else text


def tokens_up_to_stop(tokenizer, tokens: list[int], stops: list[str]) -> tuple[str, int]:
    """The text before the first stop string, and how many tokens it took: the tokens the caller gets.

    Tokens generated after the stop (the batch may run a step or two ahead of the check) are not counted.
    """
    full_text = tokenizer.decode(tokens, skip_special_tokens=True)
    text = cut_at_first_stop(full_text, stops)
    if text == full_text:
        return text, len(tokens)
    low, high = 0, len(tokens)
    # The shortest prefix that carries all of the text: decoded length grows with the prefix, so bisect.
    while low < high:
        middle = (low + high) // 2
        if len(tokenizer.decode(tokens[:middle], skip_special_tokens=True)) >= len(text):
            high = middle
        else:
            low = middle + 1
    return text, low
