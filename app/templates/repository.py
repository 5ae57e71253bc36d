"""All SQL about templates: lookups by (name, language), pages, the sync's writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Row,
    Select,
    String,
    Table,
    all_,
    and_,
    bindparam,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page
from app.db.reads import Rows, rows
from app.models import Template, TemplateStatus

templates = Template.__table__
_table = cast(Table, templates)
KNOWN_STATUSES = [s.value for s in TemplateStatus if s is not TemplateStatus.UNKNOWN]
# The columns a sync or a status report writes; the others are the row's own.
SYNCED = ("whatsapp_id", "status", "category", "reason", "components", "body", "parameter_count")

# (name, language) pairs as two arrays, zipped: one prepared statement for any number.
_keys = select(
    func.unnest(bindparam("names", type_=ARRAY(String))).label("name"),
    func.unnest(bindparam("languages", type_=ARRAY(String))).label("language"),
).subquery("keys")
_BY_KEYS = select(templates).join(
    _keys, and_(templates.c.name == _keys.c.name, templates.c.language == _keys.c.language)
)


def _in_status(status: TemplateStatus) -> Any:
    """The condition of one status; UNKNOWN: any status Herald does not know."""
    if status is TemplateStatus.UNKNOWN:
        return templates.c.status != all_(literal(KNOWN_STATUSES, ARRAY(String)))
    return templates.c.status == status.value


@lru_cache(maxsize=32)
def _page(status: TemplateStatus | None, after: bool) -> Select:
    """Templates newest first, optionally in one status, below a cursor."""
    stmt = select(templates)
    if status is not None:
        stmt = stmt.where(_in_status(status))
    if after:
        stmt = stmt.where(templates.c.id < bindparam("before_id"))
    return stmt.order_by(templates.c.id.desc()).limit(bindparam("limit"))


@lru_cache(maxsize=16)
def _count(status: TemplateStatus | None) -> Select:
    stmt = select(func.count()).select_from(templates)
    return stmt if status is None else stmt.where(_in_status(status))


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_keys(self, keys: Sequence[tuple[str, str]]) -> Sequence[Any]:
        params = {"names": [k[0] for k in keys], "languages": [k[1] for k in keys]}
        return (await rows(self.session, _BY_KEYS, params)).named()

    async def get(self, name: str, language: str) -> Row | None:
        stmt = select(templates).where(templates.c.name == name, templates.c.language == language)
        return (await self.session.execute(stmt)).first()

    async def all(self) -> Sequence[Row]:
        """Every template: a WhatsApp Business Account holds a few hundred at most."""
        return (await self.session.execute(select(templates))).all()

    async def page(self, status: TemplateStatus | None, page: Page) -> Rows:
        return await rows(self.session, _page(status, page.before_id is not None), page.values())

    async def count(self, status: TemplateStatus | None) -> int:
        return int((await rows(self.session, _count(status))).scalar())

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Insert new (name, language) pairs, overwrite the synced columns of known ones."""
        if not values:
            return
        stmt = pg_insert(_table).values(list(values))
        stmt = stmt.on_conflict_do_update(
            index_elements=[templates.c.name, templates.c.language],
            set_={**{c: stmt.excluded[c] for c in SYNCED}, "updated_at": func.now()},
        )
        await self.session.execute(stmt)

    async def set_status(
        self, name: str, language: str, values: Mapping[str, Any], *, if_changed: bool = False
    ) -> bool:
        """Write a status (and `values`' other columns) of a known template; with
        `if_changed`, only when its status differs. Whether a row was written."""
        stmt = update(_table).where(templates.c.name == name, templates.c.language == language)
        if if_changed:
            stmt = stmt.where(templates.c.status != values["status"])
        stmt = stmt.values(**values, updated_at=func.now()).returning(templates.c.id)
        return (await self.session.execute(stmt)).first() is not None

    async def mark_deleted(self, ids: Sequence[int], reason: str) -> None:
        if ids:
            stmt = (
                update(_table)
                .where(templates.c.id.in_(ids))
                .values(status=TemplateStatus.DELETED.value, reason=reason, updated_at=func.now())
            )
            await self.session.execute(stmt)
