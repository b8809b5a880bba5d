"""A job's stored token logprobs (core/jobs/records.py TokenLogprob) in OpenAI's two shapes: the chat's
`logprobs.content` list, and the legacy completions' parallel lists. Built per choice, from any slice of the
tokens, so a streamed chunk carries exactly the tokens of its text."""

from __future__ import annotations

from collections.abc import Sequence

from core.jobs.model import Job
from core.jobs.records import TokenLogprob
from core.openai.protocol import ChatLogprobs, ChatTokenLogprob, TextLogprobs, TopLogprob


def _utf8(token: str) -> list[int]:
    return list(token.encode("utf-8", errors="replace"))


def chat_logprobs(records: Sequence[TokenLogprob], top: int) -> ChatLogprobs:
    """The chat shape: each token with its logprob, bytes and its `top` most likely alternatives."""
    return ChatLogprobs(
        content=[
            ChatTokenLogprob(
                token=record.token,
                logprob=record.logprob if record.logprob is not None else float("-inf"),
                bytes=_utf8(record.token),
                top_logprobs=[
                    TopLogprob(token=alt.token, logprob=alt.logprob, bytes=_utf8(alt.token)) for alt in record.top[:top]
                ],
            )
            for record in records
        ]
    )


def text_logprobs(records: Sequence[TokenLogprob], top: int, first_offset: int = 0) -> TextLogprobs:
    """The legacy shape: tokens, their logprobs, the `top` alternatives and the chosen token as a map, and where
    each token begins in the text (from `first_offset`). A token without logprob (the prompt's first) has null
    logprob and null alternatives, as OpenAI's echo has."""
    offsets, offset = [], first_offset
    for record in records:
        offsets.append(offset)
        offset += len(record.token)
    return TextLogprobs(
        tokens=[record.token for record in records],
        token_logprobs=[record.logprob for record in records],
        top_logprobs=[
            None
            if record.logprob is None
            else {alt.token: alt.logprob for alt in record.top[:top]} | {record.token: record.logprob}
            for record in records
        ],
        text_offset=offsets,
    )


def answer_logprobs(job: Job, chat: bool, choice: int = 0) -> ChatLogprobs | TextLogprobs | None:
    """A finished job's logprobs as its choice `choice` carries them (with `echo`, the prompt's first); None unless
    asked."""
    top = job.input.logprobs
    if top is None or job.output is None:
        return None
    owner = job.output.choices[choice] if job.output.choices else job.output
    generated = owner.logprobs or []
    if chat:
        return chat_logprobs(generated, top)
    return text_logprobs([*(job.output.prompt_logprobs or []), *generated], top)


def echoed_text(job: Job) -> str:
    """The prompt's text where the job echoes it (`echo`): as sent, or as its token ids decode; else nothing."""
    if not job.input.echo or job.output is None:
        return ""
    return job.input.prompt if job.input.prompt is not None else job.output.prompt_text or ""


def token_pieces(text: str, records: Sequence[TokenLogprob]) -> list[str]:
    """`text` cut into one piece per token, in order, each as long as its token's text (the last takes the rest):
    the pieces always join to `text`, even where a token's own text differs (a character split across tokens)."""
    pieces, start = [], 0
    for i, record in enumerate(records):
        end = len(text) if i == len(records) - 1 else min(len(text), start + len(record.token))
        pieces.append(text[start:end])
        start = end
    return pieces
