"""Loaders of the templates domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.templates.repository import TemplateRepository
from loaders.base import SessionLoader


class TemplateByNameLanguageLoader(SessionLoader[tuple[str, str], Any]):
    """Synced templates by (name, language), one statement for all keys; None when Herald
    has none of that name and language."""

    async def batch_load_fn(self, keys: Sequence[tuple[str, str]]) -> list[Any]:
        rows = await TemplateRepository(self.session).by_keys(keys)
        found = {(row.name, row.language): self.types.template.from_row(row) for row in rows}
        return [found.get(key) for key in keys]
