"""WhatsApp availability checks, run by workers (verifyContacts enqueues them)."""

from __future__ import annotations

from app.changes import changes_of, committed_changes
from app.changes.apply import apply_changes
from app.contacts.repository import ContactRepository
from app.deps import Deps


async def verify_contacts(deps: Deps, contact_ids: list[int]) -> int:
    """Ask the provider which numbers are on WhatsApp; returns how many were checked."""
    async with deps.sessionmaker() as session:
        phones = await ContactRepository(session).phones(contact_ids)
    if not phones:
        return 0
    availability = await deps.provider.check_contacts(list(phones.values()))
    valid = [cid for cid, phone in phones.items() if availability.get(phone) is True]
    invalid = [cid for cid, phone in phones.items() if availability.get(phone) is False]
    async with deps.sessionmaker() as session:
        await ContactRepository(session).set_availability(valid, invalid)
        changes_of(session).contacts()
        await session.commit()
    await apply_changes(deps.redis, committed_changes(session))
    return len(valid) + len(invalid)
