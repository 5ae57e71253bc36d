"""Loaders of the contacts domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.contacts.repository import ContactRepository
from app.db.pagination import Page
from loaders.base import SessionLoader, group_by_owner


class ContactByIdLoader(SessionLoader[int, Any]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await ContactRepository(self.session).by_ids(keys)
        found = {row.id: self.types.contact.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class ContactPageByCategoryIdLoader(SessionLoader[tuple[int, Page], list[Any]]):
    """A page of each category's contacts; all categories' pages in one statement."""

    async def batch_load_fn(self, keys: Sequence[tuple[int, Page]]) -> list[list[Any]]:
        results: dict[tuple[int, Page], list[Any]] = {}
        for page in {page for _, page in keys}:
            owners = [owner for owner, p in keys if p == page]
            rows = await ContactRepository(self.session).page_per_category(owners, page)
            found = group_by_owner(rows, self.types.contact.from_row)
            results.update({(owner, page): found.get(owner, []) for owner in owners})
        return [results[key] for key in keys]
