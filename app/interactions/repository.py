"""All SQL about interactions: the replies and events a message received."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.reads import in_ids, rows
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

# Reads, built once (app/db/reads.py); rows of a message or a contact carry it as
# `owner_id`.
_BY_MESSAGES = (
    select(interactions.c.message_id.label("owner_id"), interactions)
    .where(in_ids(interactions.c.message_id))
    .order_by(interactions.c.id)
)
_BY_IDS = select(interactions).where(in_ids(interactions.c.id))
_BY_CONTACTS = (
    select(messages.c.contact_id.label("owner_id"), interactions)
    .join(messages, messages.c.id == interactions.c.message_id)
    .where(in_ids(messages.c.contact_id))
    .order_by(interactions.c.id)
)


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_message_ids(self, message_ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_MESSAGES, {"ids": list(message_ids)})).named()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_IDS, {"ids": list(ids)})).named()

    async def by_contact_ids(self, contact_ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_CONTACTS, {"ids": list(contact_ids)})).named()

    async def add(self, message_id: int, kind: str, event_id: str, payload: dict[str, Any]) -> int:
        params = {
            "message_id": message_id,
            "kind": kind,
            "event_id": event_id,
            "payload": {**payload, "id": event_id},
        }
        result = await self.session.execute(_ADD_INTERACTION, params)
        return int(result.rowcount)  # type: ignore[attr-defined]
