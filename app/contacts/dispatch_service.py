"""WhatsApp availability checks requested through the API and run by workers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.dispatch_repository import ContactDispatchRepository
from app.errors import InvalidInput, NotFound

VERIFY_CHUNK = 500


class ContactVerificationService:
    def __init__(self, session: AsyncSession) -> None:
        self.contacts = ContactDispatchRepository(session)

    async def to_verify(self, ids: Sequence[int] | None, limit: int) -> list[int]:
        """The contacts to check: the given ones (all must exist), else every unchecked one."""
        if ids is None:
            return await self.contacts.unchecked_ids()
        if len(ids) > limit:
            raise InvalidInput("contactIds", f"at most {limit} contacts per request")
        found = await self.contacts.phones(ids)
        for contact_id in ids:
            if contact_id not in found:
                raise NotFound("Contact", contact_id)
        return sorted(set(ids))


def chunks(ids: Sequence[int], size: int = VERIFY_CHUNK) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
