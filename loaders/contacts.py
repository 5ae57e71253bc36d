"""Loaders of the contacts domain."""

from __future__ import annotations

from collections.abc import Sequence

from app.contacts.repository import ContactRepository
from app.pagination import Page
from loaders.base import SessionLoader, group_by_owner
from schema.contacts.types import ContactType


class ContactByIdLoader(SessionLoader[int, ContactType | None]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[ContactType | None]:
        rows = await ContactRepository(self.session).by_ids(keys)
        found = {row.id: ContactType.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class ContactPageByCategoryIdLoader(SessionLoader[tuple[int, Page], list[ContactType]]):
    """A page of each category's contacts; all categories' pages in one statement."""

    async def batch_load_fn(self, keys: Sequence[tuple[int, Page]]) -> list[list[ContactType]]:
        results: dict[tuple[int, Page], list[ContactType]] = {}
        for page in {page for _, page in keys}:
            owners = [owner for owner, p in keys if p == page]
            rows = await ContactRepository(self.session).page_per_category(owners, page)
            found = group_by_owner(rows, ContactType.from_row)
            results.update({(owner, page): found.get(owner, []) for owner in owners})
        return [results[key] for key in keys]
