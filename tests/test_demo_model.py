"""The demo model's tokenizer: a benchmark-sized vocabulary is real BPE tokens, and text round-trips exactly."""

from __future__ import annotations

import re

from scripts.make_demo_model import SPECIAL_TOKENS, train_tokenizer

VIETNAMESE = "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam; phở, bún chả và cà phê trứng."


def test_an_8000_token_vocabulary_is_nearly_all_learned_tokens() -> None:
    tokenizer = train_tokenizer(8000)
    reserved = [token for token in tokenizer.get_vocab() if re.fullmatch(r"<\|reserved_special_token_\d+\|>", token)]
    learned = len(tokenizer) - len(reserved) - len(SPECIAL_TOKENS)

    assert len(tokenizer) >= 7900
    assert len(tokenizer) % 64 == 0
    assert learned >= 0.99 * len(tokenizer)


def test_the_8000_token_vocabulary_round_trips_vietnamese_exactly() -> None:
    tokenizer = train_tokenizer(8000)
    for text in (VIETNAMESE, "  Trăm năm trong cõi người ta,\n\tchữ tài chữ mệnh khéo là ghét nhau. 😀"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # Learned merges, not bytes: most syllables are one token, at least as well as with the default vocabulary.
    tokens = len(tokenizer(VIETNAMESE, add_special_tokens=False)["input_ids"])
    assert tokens < 2 * len(VIETNAMESE.split())
    assert tokens <= len(train_tokenizer()(VIETNAMESE, add_special_tokens=False)["input_ids"])


def test_the_default_vocabulary_stays_the_bundled_corpus_size() -> None:
    assert len(train_tokenizer()) == 2048
