"""Loaders of the categories domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.categories.repository import CategoryRepository
from loaders.base import SessionLoader, group_by_owner


class CategoryByIdLoader(SessionLoader[int, Any]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await CategoryRepository(self.session).by_ids(keys)
        found = {row.id: self.types.category.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class CategoriesByContactIdLoader(SessionLoader[int, list[Any]]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[list[Any]]:
        rows = await CategoryRepository(self.session).by_contact_ids(keys)
        found = group_by_owner(rows, self.types.category.from_row)
        return [found.get(key, []) for key in keys]


class CategoriesByCampaignIdLoader(SessionLoader[int, list[Any]]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[list[Any]]:
        rows = await CategoryRepository(self.session).by_campaign_ids(keys)
        found = group_by_owner(rows, self.types.category.from_row)
        return [found.get(key, []) for key in keys]


class ContactCountByCategoryIdLoader(SessionLoader[int, int]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[int]:
        found = await CategoryRepository(self.session).contact_counts(keys)
        return [found.get(key, 0) for key in keys]
