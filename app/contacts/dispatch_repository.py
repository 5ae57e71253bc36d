"""All SQL about contacts that dispatch changes: WhatsApp availability and opt-outs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import BigInteger, Table, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Contact, WhatsAppStatus

contacts = cast(Table, Contact.__table__)

_SET_AVAILABILITY = text(
    """
    UPDATE contacts c
    SET whatsapp_status = CASE WHEN c.id = ANY(:invalid) THEN 'invalid' ELSE 'valid' END,
        whatsapp_checked_at = now(), updated_at = now()
    WHERE c.id = ANY(:valid) OR c.id = ANY(:invalid)
    """
).bindparams(
    bindparam("valid", type_=ARRAY(BigInteger)), bindparam("invalid", type_=ARRAY(BigInteger))
)


class ContactDispatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def phones(self, ids: Sequence[int]) -> dict[int, str]:
        stmt = select(contacts.c.id, contacts.c.phone).where(contacts.c.id.in_(ids))
        return {row.id: row.phone for row in await self.session.execute(stmt)}

    async def unchecked_ids(self) -> list[int]:
        stmt = (
            select(contacts.c.id)
            .where(contacts.c.whatsapp_status == WhatsAppStatus.UNKNOWN)
            .order_by(contacts.c.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def mark_invalid(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(
                update(contacts)
                .where(contacts.c.id.in_(ids))
                .values(
                    whatsapp_status=WhatsAppStatus.INVALID,
                    whatsapp_checked_at=func.now(),
                    updated_at=func.now(),
                )
            )

    async def set_availability(self, valid: Sequence[int], invalid: Sequence[int]) -> None:
        if valid or invalid:
            await self.session.execute(
                _SET_AVAILABILITY, {"valid": list(valid), "invalid": list(invalid)}
            )

    async def opt_out(self, phone: str) -> int | None:
        """Record the opt-out once (the first time wins); the contact's id, if known."""
        stmt = (
            update(contacts)
            .where(contacts.c.phone == phone)
            .values(opted_out_at=func.coalesce(contacts.c.opted_out_at, func.now()))
            .returning(contacts.c.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
