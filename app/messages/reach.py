"""The messaging limit at dispatch: which of a claimed batch may go out now, and when the
others may (app/whatsapp/limit.py keeps the count).

Contacts whose customer-service window is open are not counted; the others are reserved in
the portfolio's window, which admits those it already holds and new ones up to the limit.
Refused messages wait, each until the slot it may take frees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.exceptions import RedisError

from app.deps import Deps
from app.messages.repository import Claimed, MessageRepository
from app.whatsapp.limit import ADMITTED_NEW, MessagingLimiter, Reservation
from app.whatsapp.providers import SendResult

logger = logging.getLogger(__name__)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def limiter(deps: Deps) -> MessagingLimiter:
    async def reached(since: float) -> list[tuple[str, int]]:
        async with deps.sessionmaker() as session:
            return await MessageRepository(session).reached_since(at(since))

    return MessagingLimiter(deps.redis, reached, deps.clock)


@dataclass
class Gate:
    admitted: list[Claimed] = field(default_factory=list)
    waiting: list[tuple[int, datetime]] = field(default_factory=list)  # (message, until)
    reservation: Reservation | None = None
    counted: dict[int, str] = field(default_factory=dict)  # message → phone, admitted
    new: set[int] = field(default_factory=set)  # of those, the ones newly in the window

    @property
    def first_free(self) -> datetime | None:
        return min((until for _, until in self.waiting), default=None)


async def admit(deps: Deps, limit: int | None, eligible: Sequence[Claimed]) -> Gate:
    counted = [m for m in eligible if not m.window_open]
    gate = Gate(admitted=[m for m in eligible if m.window_open])
    if not counted:
        return gate
    reservation = await limiter(deps).reserve(limit, [m.phone for m in counted])
    gate.reservation = reservation
    frees = iter(reservation.frees_at)
    for index, message in enumerate(counted):
        if not reservation.admitted(index):
            gate.waiting.append((message.id, at(next(frees))))
            continue
        gate.admitted.append(message)
        gate.counted[message.id] = message.phone
        if reservation.flags[index] == ADMITTED_NEW:
            gate.new.add(message.id)
    return gate


async def settle(deps: Deps, gate: Gate, results: Sequence[SendResult], unsent: set[int]) -> None:
    """Newly counted recipients whose message did not go out leave the window again (a
    send of unknown fate stays counted); those reached are counted again if Redis lost the
    window meanwhile. Best effort: a refund lost only makes the limit stricter."""
    if gate.reservation is None or not gate.counted:
        return
    failed = {r.message_id for r in results if not r.ok and not r.unknown}
    sent = {r.message_id for r in results if r.ok}
    back = [gate.counted[m] for m in gate.new if m in unsent or m in failed]
    reached = [phone for m, phone in gate.counted.items() if m in sent]
    try:
        await limiter(deps).settle(gate.reservation, back, reached)
    except RedisError as exc:
        logger.warning("messaging limit: batch not settled (%d to give back): %r", len(back), exc)
