"""Recording a batch's send results by their error class (app/whatsapp/errors.py).

Accepted sends become `sent`; message-final errors fail the message with the code (131026
also marks the contact invalid); retry-later errors put it back with a not-before time;
slow-down and campaign-stopping errors put it back at once, as a send that never left;
sends of unknown fate stay `sending` for reconciliation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.repository import ContactRepository
from app.messages.repository import Deferral, MessageRepository
from app.whatsapp.errors import ErrorClass, classify
from app.whatsapp.providers import SendResult


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    slowed: int = 0  # put back by a slow-down error
    stopped: int = 0  # put back by a campaign-stopping error
    unknown: int = 0
    unknown_error: str | None = None
    invalid: bool = False  # a contact's number was found undeliverable
    # Campaign-stopping codes met, those that pause every campaign first.
    stopping_codes: list[int] = field(default_factory=list)

    @property
    def put_back(self) -> int:
        """Messages back to pending: the provider accepted none of them."""
        return self.deferred + self.slowed + self.stopped


async def record(
    session: AsyncSession,
    results: Sequence[SendResult],
    skipped: Sequence[tuple[int, str]],
    contact_of: dict[int, int],
) -> Recorded:
    """Record the provider's `results` and the `skipped` (id, reason) messages, which never
    went out (opted out or invalid since materialized); the caller commits."""
    recorded = Recorded()
    sent: list[SendResult] = []
    failed: list[tuple[int, str, int | None]] = [(i, reason, None) for i, reason in skipped]
    deferrals: list[Deferral] = []
    released: list[int] = []
    invalid: list[int] = []
    stopping: set[int] = set()
    for result in results:
        if result.ok:
            sent.append(result)
            continue
        if result.unknown:
            recorded.unknown += 1
            recorded.unknown_error = result.error
            continue
        rule = classify(result.code, result.http_status)
        error = result.error or "failed"
        if rule.kind is ErrorClass.MESSAGE_FINAL:
            failed.append((result.message_id, error, result.code))
            if rule.undeliverable:
                invalid.append(contact_of[result.message_id])
        elif rule.kind is ErrorClass.RETRY_LATER:
            deferrals.append(
                Deferral(
                    result.message_id,
                    rule.retry_after_s,
                    rule.backoff,
                    rule.deferrals,
                    error,
                    result.code,
                )
            )
        else:
            released.append(result.message_id)
            if rule.kind is ErrorClass.SLOW_DOWN:
                recorded.slowed += 1
            else:
                recorded.stopped += 1
                stopping.add(result.code or 0)  # campaign-stopping rules all have a code
    messages = MessageRepository(session)
    await messages.record_sent(
        [r.message_id for r in sent], [r.provider_message_id or "" for r in sent]
    )
    await messages.record_failed(*_columns(failed))
    deferred = await messages.defer(deferrals)
    await messages.release(released)
    await ContactRepository(session).mark_invalid(invalid)
    recorded.sent = len(sent)
    recorded.failed = len(failed) + deferred.failed
    recorded.deferred = deferred.pending
    recorded.invalid = bool(invalid)
    recorded.stopping_codes = sorted(stopping, key=lambda code: classify(code).template_scoped)
    return recorded


def _columns(
    failed: list[tuple[int, str, int | None]],
) -> tuple[list[int], list[str], list[int | None]]:
    return [f[0] for f in failed], [f[1] for f in failed], [f[2] for f in failed]
