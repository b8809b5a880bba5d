"""The soak's webhook receiver: tests/receivers.py's real HTTP server, answering 500 to about a fifth of the
deliveries (drawn in advance, so what each delivery was answered is known afterwards)."""

from __future__ import annotations

import hmac
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from launcher.redis_server import free_port
from tests.receivers import ReceivedRequest, Receiver

FAILURE_SHARE = 0.2
# More answers than a long soak's deliveries; past them the receiver answers 200.
DRAWN_ANSWERS = 200_000
SIGNATURE_TOLERANCE_S = 300  # the package's own tolerance


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got, verified: its event's type, subject id and webhook id, and its answer."""

    webhook_id: str
    event_type: str
    subject_id: str
    attempt_of_job: int | None  # the job's attempts in a `job.started` event: a job started twice sends two
    data: dict | None
    answered: int
    verified: bool


class FlakyReceiver:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.answers = [500 if rng.random() < FAILURE_SHARE else 200 for _ in range(DRAWN_ANSWERS)]
        self.receiver = Receiver(free_port(), list(self.answers))

    @property
    def url(self) -> str:
        return self.receiver.url

    def start(self) -> FlakyReceiver:
        self.receiver.start()
        return self

    def stop(self) -> None:
        self.receiver.stop()

    def deliveries(self, secret: str) -> list[Delivery]:
        """Every request so far, in arrival order, each checked with the standardwebhooks package."""
        verifier = Webhook(secret)
        found = []
        for index, request in enumerate(list(self.receiver.requests)):
            payload = json.loads(request.body)
            data = payload.get("data") or {}
            found.append(
                Delivery(
                    webhook_id=request.headers.get("webhook-id", ""),
                    event_type=str(payload.get("type")),
                    subject_id=str(data.get("id")),
                    attempt_of_job=data.get("attempts") if payload.get("type") == "job.started" else None,
                    data=data,
                    answered=self.answers[index] if index < len(self.answers) else 200,
                    verified=verifies(verifier, request),
                )
            )
        return found


def verifies(verifier: Webhook, request: ReceivedRequest) -> bool:
    """The package's own check, as of the moment the request arrived: `Webhook.verify` reads the clock when it is
    called, and a long soak checks deliveries far more than its 5-minute tolerance after they came."""
    try:
        webhook_id = request.headers["webhook-id"]
        sent_at = int(request.headers["webhook-timestamp"])
        signatures = request.headers["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        return False
    if abs(request.at - sent_at) > SIGNATURE_TOLERANCE_S:
        return False
    expected = verifier.sign(webhook_id, datetime.fromtimestamp(sent_at, tz=UTC), request.body.decode())
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
