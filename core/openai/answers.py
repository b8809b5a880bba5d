"""Finished jobs as OpenAI's answers: a whole completion, or the chunks of a streamed one (core/openai/protocol.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.jobs.model import Job, parse_iso
from core.jobs.records import JobUsage, TokenLogprob
from core.openai.logprobs import answer_logprobs, chat_logprobs, echoed_text, text_logprobs, token_pieces
from core.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkDelta,
    Endpoint,
    FinishReason,
    TextChoice,
    TextChunkChoice,
    TextCompletion,
    TextCompletionChunk,
)

# The service's finish reasons as OpenAI's; a succeeded job only ends "stop" or "length".
_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "timeout": "length", "canceled": "stop"}

Chunk = ChatCompletionChunk | TextCompletionChunk


def completion_id(endpoint: Endpoint, job_id: str) -> str:
    """The answer's `id`: the job's id behind OpenAI's prefix, so `GET /jobs/<id>` finds the job behind it."""
    return f"{endpoint.id_prefix}{job_id}"


def finish_reason(job_finish_reason: str | None) -> FinishReason:
    """The service's finish reason as OpenAI's (`stop` or `length`)."""
    return _FINISH_REASONS.get(job_finish_reason or "stop", "stop")


def created_at(job: Job) -> int:
    """OpenAI's `created`: the job's creation as whole Unix seconds."""
    return int(parse_iso(job.created_at).timestamp())


def usage_of(job: Job) -> JobUsage:
    """The job's token counts; zeros when it has none."""
    if job.usage is None:
        return JobUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    return job.usage


def choices_of(job: Job) -> list[tuple[str, FinishReason]]:
    """Each choice's text and OpenAI finish reason, in index order: the job's `n` choices, or its one output."""
    if job.output is None:
        return [("", finish_reason(None))]
    if job.output.choices:
        return [(choice.text, finish_reason(choice.finish_reason)) for choice in job.output.choices]
    return [(job.output.text, finish_reason(job.output.finish_reason))]


def completion_answer(endpoint: Endpoint, jobs: Sequence[Job], model_name: str) -> ChatCompletion | TextCompletion:
    """Succeeded jobs as one OpenAI `chat.completion` or `text_completion`, naming the served model: a job per
    prompt (a chat, or a completion's one prompt: one job; a completion with several prompts: one each, in order),
    each with the choices it sampled (`n`). Indexes run over all of them, prompt by prompt (prompt i's choice j is
    i * n + j, as OpenAI numbers them); `usage` adds up every job's; `id` and `created` are the first job's."""
    first = jobs[0]
    common = {
        "id": completion_id(endpoint, first.id),
        "object": endpoint.object_name,
        "created": created_at(first),
        "model": model_name,
        "usage": total_usage(jobs),
        "system_fingerprint": None,
    }
    # (index in the answer, job, choice within the job, text, finish reason)
    numbered: list[tuple[int, Job, int, str, FinishReason]] = []
    for job in jobs:
        for choice, (text, reason) in enumerate(choices_of(job)):
            numbered.append((len(numbered), job, choice, text, reason))
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        return ChatCompletion(
            choices=[
                ChatChoice(
                    index=index,
                    message=AssistantMessage(role="assistant", content=text, refusal=None),
                    logprobs=answer_logprobs(job, chat=True, choice=choice),
                    finish_reason=reason,
                )
                for index, job, choice, text, reason in numbered
            ],
            **common,
        )
    # With `echo`, every choice begins with its prompt, as OpenAI's do.
    return TextCompletion(
        choices=[
            TextChoice(
                index=index,
                text=echoed_text(job) + text,
                logprobs=answer_logprobs(job, chat=False, choice=choice),
                finish_reason=reason,
            )
            for index, job, choice, text, reason in numbered
        ],
        **common,
    )


def total_usage(jobs: Sequence[Job]) -> JobUsage:
    """The token counts of all these jobs together (each job's prompt counted once)."""
    usages = [usage_of(job) for job in jobs]
    return JobUsage(
        prompt_tokens=sum(usage.prompt_tokens for usage in usages),
        completion_tokens=sum(usage.completion_tokens for usage in usages),
        total_tokens=sum(usage.total_tokens for usage in usages),
    )


def sent(event: BaseModel) -> dict[str, Any]:
    """A streamed answer's event (a chunk, or the error that ends it) as the JSON its `data:` line carries: the
    fields it was built with, so a chunk's `usage` is absent unless usage was asked for."""
    return event.model_dump(mode="json", exclude_unset=True)


@dataclass(frozen=True)
class StreamChunks:
    """Builds the chunks of one streamed answer, all with the same id, `created` and model.

    A chunk is sent as `model_dump(mode="json", exclude_unset=True)`: what is not set here is absent.
    """

    endpoint: Endpoint
    job_id: str
    created: int
    model_name: str
    include_usage: bool
    continuous_usage: bool = False
    # The job's `logprobs` (its chunks carry their tokens' logprobs) and `echo` (its answer is sent token by token
    # once the job ends, the prompt first: see per_token).
    logprobs: int | None = None
    echo: bool = False
    # The answer's index of this job's first choice: 0, or i * n for prompt i of a completion with several prompts
    # (`job_id` is then the first prompt's job, which names the whole answer).
    first_index: int = 0

    @property
    def buffered(self) -> bool:
        """The answer's chunks come from the finished job, not from the live text events."""
        return self.echo

    def _chunk(self, choices: list, usage: JobUsage | None = None) -> Chunk:
        fields = {
            "id": completion_id(self.endpoint, self.job_id),
            "object": self.endpoint.chunk_object_name,
            "created": self.created,
            "model": self.model_name,
            "choices": choices,
            "system_fingerprint": None,
        }
        if self.include_usage or self.continuous_usage or usage is not None:
            # Every chunk but the last carries a null usage, as OpenAI's do.
            fields["usage"] = usage
        if self.endpoint is Endpoint.CHAT_COMPLETIONS:
            return ChatCompletionChunk(**fields)
        return TextCompletionChunk(**fields)

    def _choice(
        self, text: str | None, reason: FinishReason | None, *, role: bool = False, index: int = 0, logprobs=None
    ) -> ChatChunkChoice | TextChunkChoice:
        index += self.first_index
        if self.endpoint is Endpoint.CHAT_COMPLETIONS:
            delta: dict[str, str] = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            return ChatChunkChoice(index=index, delta=ChunkDelta(**delta), logprobs=logprobs, finish_reason=reason)
        return TextChunkChoice(index=index, text=text or "", logprobs=logprobs, finish_reason=reason)

    def opening(self, index: int = 0) -> Chunk | None:
        """The chat's first chunk of a choice, naming the role before any content; None for text completions."""
        if self.endpoint is not Endpoint.CHAT_COMPLETIONS:
            return None
        return self._chunk([self._choice(None, None, role=True, index=index)])

    def text(self, delta: str, records: Sequence[TokenLogprob] = (), offset: int = 0, index: int = 0) -> Chunk:
        """A chunk carrying the next piece of choice `index`'s text, and, for a request with logprobs, those of the
        tokens it completes (`offset`: where the first of them begins in the choice's text)."""
        if self.logprobs is None:
            return self._chunk([self._choice(delta, None, index=index)])
        if self.endpoint is Endpoint.CHAT_COMPLETIONS:
            shape = chat_logprobs(records, self.logprobs)
        else:
            shape = text_logprobs(records, self.logprobs, offset)
        return self._chunk([self._choice(delta, None, index=index, logprobs=shape)])

    def per_token(self, job: Job) -> Iterator[Chunk]:
        """A finished job's text, one chunk per token, each with that token's logprobs (when asked); with `echo`,
        a first chunk carries the prompt (and its tokens' logprobs). The chunks join to the unstreamed answer."""
        output = job.output
        if output is None:
            return
        chat = self.endpoint is Endpoint.CHAT_COMPLETIONS
        if self.echo and not chat:
            prompt = output.prompt_logprobs or []
            shape = text_logprobs(prompt, self.logprobs) if self.logprobs is not None and prompt else None
            yield self._chunk([self._choice(echoed_text(job), None, logprobs=shape)])
        records = output.logprobs or []
        if self.logprobs is None or not records:
            if output.text:
                yield self.text(output.text)
            return
        offset = len(echoed_text(job)) if not chat else 0
        for record, piece in zip(records, token_pieces(output.text, records), strict=True):
            if chat:
                shape = chat_logprobs([record], self.logprobs)
            else:
                shape = text_logprobs([record], self.logprobs, offset)
                offset += len(record.token)
            yield self._chunk([self._choice(piece, None, logprobs=shape)])

    def finish(self, job_finish_reason: str | None, job: Job | None = None, index: int = 0) -> Chunk:
        """The chunk that closes a choice with its finish reason (and, with continuous usage, the job's usage)."""
        usage = usage_of(job) if self.continuous_usage and job is not None else None
        return self._chunk([self._choice(None, finish_reason(job_finish_reason), index=index)], usage)

    def whole_choice(
        self, index: int, text: str, job_finish_reason: str, job: Job, records: Sequence[TokenLogprob] = ()
    ) -> Iterator[Chunk]:
        """A choice not streamed as it was written (choices after the first): its opening, its whole text in one
        chunk (with its tokens' logprobs, when asked), its finish."""
        opening = self.opening(index)
        if opening is not None:
            yield opening
        if text:
            yield self.text(text, records, index=index)
        yield self.finish(job_finish_reason, job, index)

    def usage(self, usage: JobUsage) -> Chunk:
        """The last chunk when usage was asked for: no choices, the answer's token counts."""
        return self._chunk([], usage)
