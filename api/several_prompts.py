"""An OpenAI text completion with several prompts: a job per prompt, submitted in order, answered together.

Each prompt's job is an ordinary job (its own place in the batch and the key's turns, listed in `GET /jobs`). The
call holds one wait slot. Room for all of them is checked first; a submission refused midway cancels the jobs it
already queued, unless the call has an Idempotency-Key: then each prompt's job is claimed under the key and its
index (`<key>/<i>`), and a retry of the same call is answered by the same jobs.
"""

from __future__ import annotations

import logging

from api.services import Services
from core.errors import InvalidInput, ServiceError
from core.jobs.idempotency import MAX_KEY_CHARS
from core.jobs.model import GenerationInput, Job

log = logging.getLogger("llm.api")


def prompt_keys(idempotency_key: str | None, count: int) -> list[str | None]:
    """Each prompt's Idempotency-Key: the call's with the prompt's index, or none."""
    if idempotency_key is None:
        return [None] * count
    longest = MAX_KEY_CHARS - len(f"/{count - 1}")
    if not 0 < len(idempotency_key) <= longest:
        raise InvalidInput(
            f"Idempotency-Key: with {count} prompts it may have 1 to {longest} characters (each prompt's job is "
            "claimed under the key and its index)",
            field="Idempotency-Key",
        )
    return [f"{idempotency_key}/{index}" for index in range(count)]


def submit_each(
    svc: Services, owner: str, generations: tuple[GenerationInput, ...], idempotency_key: str | None
) -> list[Job]:
    """Submit a job per prompt, in order; a refusal names its prompt, and without a key cancels the jobs before it.
    One prompt is submitted as any job is (its key as sent)."""
    if len(generations) == 1:
        return [svc.submit_job.submit(generations[0], owner, idempotency_key)]
    keys = prompt_keys(idempotency_key, len(generations))
    svc.submit_job.check_room(owner, len(generations))
    jobs: list[Job] = []
    try:
        for index, (params, key) in enumerate(zip(generations, keys, strict=True)):
            try:
                jobs.append(svc.submit_job.submit(params, owner, key))
            except InvalidInput as error:
                raise type(error)(f"prompt {index}: {error.message}", field=error.field, job_id=error.job_id) from None
    except Exception:
        if idempotency_key is None:
            for job in jobs:
                _cancel_unanswered(svc, job, owner)
        raise
    return jobs


def _cancel_unanswered(svc: Services, job: Job, owner: str) -> None:
    """Cancel a prompt's job whose call is answered with an error (no one will ask for it)."""
    try:
        svc.cancel_job(job.id, owner)
    except ServiceError as error:  # finished meanwhile, or Redis away: the job stays as it is
        log.warning("job %s of a refused several-prompt completion left as it is: %s", job.id, error.message)
