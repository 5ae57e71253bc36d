"""Enqueue dispatch work by actor name, so API processes never import the actors."""

from __future__ import annotations

from typing import Any

import dramatiq

from app.config import Settings
from app.worker.broker import QUEUE, build_broker

MATERIALIZE = "campaign.materialize"
SEND_BATCH = "campaign.send_batch"
SWEEP = "campaign.sweep"
START_SCHEDULED = "campaign.start_scheduled"
VERIFY_CONTACTS = "contacts.verify"


class Jobs:
    """The dispatch messages Herald sends; every argument is an id or a token."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _send(self, actor_name: str, *args: object, delay_ms: int | None = None) -> None:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=QUEUE, actor_name=actor_name, args=args, kwargs={}, options={}
        )
        self.broker.enqueue(message, delay=delay_ms or None)

    def materialize(self, campaign_id: int, *, delay_ms: int | None = None) -> None:
        self._send(MATERIALIZE, campaign_id, delay_ms=delay_ms)

    def send_batch(self, campaign_id: int, *, delay_ms: int | None = None) -> None:
        self._send(SEND_BATCH, campaign_id, delay_ms=delay_ms)

    def sweep(self, campaign_id: int, token: str, *, delay_ms: int | None = None) -> None:
        self._send(SWEEP, campaign_id, token, delay_ms=delay_ms)

    def start_scheduled(self, campaign_id: int, *, delay_ms: int | None = None) -> None:
        self._send(START_SCHEDULED, campaign_id, delay_ms=delay_ms)

    def verify_contacts(self, contact_ids: list[int]) -> None:
        self._send(VERIFY_CONTACTS, contact_ids)


def open_jobs(settings: Settings) -> Jobs:
    """Jobs on a new broker for these Settings: one per API runtime, test or tool."""
    return Jobs(build_broker(settings))
