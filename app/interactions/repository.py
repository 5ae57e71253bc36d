"""All SQL about interactions: the replies and events a message received."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Interaction, Message

messages = Message.__table__
interactions = Interaction.__table__

# Webhooks are redelivered: the inbound message id makes the insert idempotent.
_ADD_INTERACTION = text(
    """
    INSERT INTO interactions (message_id, kind, payload)
    SELECT CAST(:message_id AS bigint), CAST(:kind AS varchar), :payload
    WHERE NOT EXISTS (
        SELECT 1 FROM interactions
        WHERE message_id = CAST(:message_id AS bigint) AND kind = CAST(:kind AS varchar)
          AND payload->>'id' = :event_id
    )
    """
).bindparams(bindparam("payload", type_=JSONB))


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_message_ids(self, message_ids: Sequence[int]) -> Sequence[Row]:
        stmt = (
            select(interactions.c.message_id.label("owner_id"), interactions)
            .where(interactions.c.message_id.in_(message_ids))
            .order_by(interactions.c.id)
        )
        return (await self.session.execute(stmt)).all()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Row]:
        return (
            await self.session.execute(select(interactions).where(interactions.c.id.in_(ids)))
        ).all()

    async def by_contact_ids(self, contact_ids: Sequence[int]) -> Sequence[Row]:
        stmt = (
            select(messages.c.contact_id.label("owner_id"), interactions)
            .join(messages, messages.c.id == interactions.c.message_id)
            .where(messages.c.contact_id.in_(contact_ids))
            .order_by(interactions.c.id)
        )
        return (await self.session.execute(stmt)).all()

    async def add(self, message_id: int, kind: str, event_id: str, payload: dict[str, Any]) -> int:
        params = {
            "message_id": message_id,
            "kind": kind,
            "event_id": event_id,
            "payload": {**payload, "id": event_id},
        }
        result = await self.session.execute(_ADD_INTERACTION, params)
        return int(result.rowcount)  # type: ignore[attr-defined]
