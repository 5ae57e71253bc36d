"""Loaders of API keys (`node(id:)`, for admins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.api_keys.repository import ApiKeyRepository
from loaders.base import SessionLoader


class ApiKeyByIdLoader(SessionLoader[int, Any]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await ApiKeyRepository(self.session).by_ids(keys)
        found = {row.id: self.types.api_key.from_row(row) for row in rows}
        return [found.get(key) for key in keys]
