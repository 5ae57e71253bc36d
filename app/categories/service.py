"""Category rules: names are required, at most 200 characters and unique; descriptions are
short."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.repository import CategoryRepository
from app.changes import changes_of
from app.errors import CategoryInUse, Duplicate, NotFound
from app.inputs import check_length, check_text

NAME_MAX = 200  # categories.name is VARCHAR(200)
# categories.description is TEXT; a description is a sentence or two, shown in every list.
DESCRIPTION_MAX = 1_000


def _description(description: str | None) -> str | None:
    if description is None:
        return None
    return check_length("description", description, DESCRIPTION_MAX)


class CategoryService:
    """Each write records what it changed (app/changes)."""

    def __init__(self, session: AsyncSession) -> None:
        self.categories = CategoryRepository(session)
        self.changes = changes_of(session)

    async def create(self, name: str, description: str | None) -> Row:
        name = check_text("name", name, NAME_MAX)
        row = await self.categories.insert(name, _description(description))
        if row is None:
            raise Duplicate("Category", "name", name)
        self.changes.categories()
        return row

    async def update(self, category_id: int, changes: dict[str, Any]) -> Row:
        """Apply `changes` (name, description: only the keys given)."""
        values = dict(changes)
        if "name" in values:
            values["name"] = check_text("name", values["name"], NAME_MAX)
        if "description" in values:
            values["description"] = _description(values["description"])
        if values:
            row = await self.categories.update(category_id, values)
        else:
            row = next(iter(await self.categories.by_ids([category_id])), None)
        if row is None:
            raise NotFound("Category", category_id)
        self.changes.categories()
        return row

    async def delete(self, category_id: int) -> None:
        """Contacts stay; the category leaves their memberships and campaigns' targets.

        Refused while a scheduled, sending or paused campaign targets it: resuming or
        retrying such a campaign recomputes its recipients from its targets.
        """
        active = await self.categories.active_campaigns_targeting(category_id)
        if active:
            raise CategoryInUse(category_id, list(active))
        if not await self.categories.delete(category_id):
            raise NotFound("Category", category_id)
        self.changes.categories(membership=True)
        self.changes.campaign()  # campaigns' targets lost it
