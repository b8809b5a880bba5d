"""The model's context at submit: a prompt whose tokens plus `max_tokens` can't fit is refused before it queues, and
so are `stop_token_ids` and `prompt_token_ids` outside the model's vocabulary.

The API counts with the model's own tokenizer file (the `tokenizers` library only: no torch, no transformers)
and reads the context length from config.json. When the model folder is not readable here (the API in a
container of its own), the check is skipped and the worker, which refuses the same jobs, stays the judge.
Chat `messages` are rendered by the model's chat template on the worker only, so only `prompt` (and a prompt given as
token ids, counted as it is) is checked here.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.jobs.model import GenerationInput

log = logging.getLogger("llm.api")

_CONTEXT_NAMES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


@dataclass(frozen=True)
class _Counter:
    tokenizer: Any  # tokenizers.Tokenizer
    context_tokens: int
    vocab_size: int | None


def model_files(model_dir: Path) -> tuple[Path, Path] | None:
    """(config.json, tokenizer.json) of a `fp16/` + `tokenizer/` folder or a plain Hugging Face one; None if absent."""
    weights = model_dir / "fp16"
    if (weights / "config.json").is_file():
        tokenizer_dir = model_dir / "tokenizer" if (model_dir / "tokenizer").is_dir() else weights
    elif (model_dir / "config.json").is_file():
        weights = tokenizer_dir = model_dir
    else:
        return None
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    return (weights / "config.json", tokenizer_file) if tokenizer_file.is_file() else None


def context_length(config: dict) -> int | None:
    """The longest sequence the model takes, under whichever name its config (or its text part) uses."""
    config = config.get("text_config") or config
    for name in _CONTEXT_NAMES:
        value = config.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


class ContextWindow:
    """Refuses prompts the model can't hold, once the tokenizer is loaded (lazily, on first use)."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._loaded = False
        self._counter: _Counter | None = None

    def _load(self) -> _Counter | None:
        files = model_files(self.model_dir)
        if files is None:
            return None
        config_file, tokenizer_file = files
        config = json.loads(config_file.read_text(encoding="utf-8"))
        context = context_length(config)
        if context is None:
            return None
        from tokenizers import Tokenizer  # only when there is a model to count for

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_truncation()  # count every token, as the worker does
        tokenizer.no_padding()
        vocab_size = (config.get("text_config") or config).get("vocab_size")
        return _Counter(tokenizer, context, vocab_size if isinstance(vocab_size, int) else None)

    def counter(self) -> _Counter | None:
        """The loaded tokenizer and context, or None when this process can't read the model."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        self._counter = self._load()
                    except Exception as error:  # whatever is unreadable here, the worker still checks
                        log.warning(
                            "the model's tokenizer can't be read here (%s): the worker checks the context", error
                        )
                        self._counter = None
                    self._loaded = True
        return self._counter

    def check(self, params: GenerationInput) -> None:
        """Raise InvalidInput when the prompt's tokens plus max_tokens pass the model's context, or a stop token id
        or prompt token id is not in its vocabulary."""
        if params.prompt is None and params.prompt_token_ids is None and not params.stop_token_ids:
            return
        counter = self.counter()
        if counter is None:
            return
        outside = params.token_outside(counter.vocab_size) if counter.vocab_size else None
        if outside is not None:
            field, message = outside
            raise InvalidInput(message, field=field)
        if params.prompt is not None:
            prompt_tokens = len(counter.tokenizer.encode(params.prompt).ids)
        elif params.prompt_token_ids is not None:
            prompt_tokens = len(params.prompt_token_ids)  # used as they are: no BOS is added
        else:
            return
        if prompt_tokens + params.max_tokens > counter.context_tokens:
            raise InvalidInput(
                f"the prompt ({prompt_tokens} tokens) plus max_tokens ({params.max_tokens}) exceeds "
                f"the model's context of {counter.context_tokens} tokens",
                field="max_tokens",
            )
