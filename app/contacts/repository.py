"""All SQL about contacts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Contact, WhatsAppStatus, category_contacts
from app.pagination import Page, apply_page, page_per_parent

contacts = Contact.__table__


@dataclass(frozen=True)
class ContactFilter:
    search: str | None = None
    category_id: int | None = None
    whatsapp_status: WhatsAppStatus | None = None
    opted_out: bool | None = None

    def where(self) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.search:
            pattern = f"%{_escape_like(self.search)}%"
            clauses.append(or_(contacts.c.name.ilike(pattern), contacts.c.phone.ilike(pattern)))
        if self.category_id is not None:
            clauses.append(
                contacts.c.id.in_(
                    select(category_contacts.c.contact_id).where(
                        category_contacts.c.category_id == self.category_id
                    )
                )
            )
        if self.whatsapp_status is not None:
            clauses.append(contacts.c.whatsapp_status == self.whatsapp_status)
        if self.opted_out is not None:
            clauses.append(
                contacts.c.opted_out_at.is_not(None)
                if self.opted_out
                else contacts.c.opted_out_at.is_(None)
            )
        return and_(True, *clauses)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, where: ContactFilter, page: Page) -> Sequence[Row]:
        stmt = apply_page(select(contacts).where(where.where()), contacts.c.id, page)
        return (await self.session.execute(stmt)).all()

    async def count(self, where: ContactFilter) -> int:
        stmt = select(func.count()).select_from(contacts).where(where.where())
        return (await self.session.execute(stmt)).scalar_one()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Row]:
        stmt = select(contacts).where(contacts.c.id.in_(ids))
        return (await self.session.execute(stmt)).all()

    async def page_per_category(self, category_ids: Sequence[int], page: Page) -> Sequence[Row]:
        child = select(contacts).join(
            category_contacts, category_contacts.c.contact_id == contacts.c.id
        )
        stmt = page_per_parent(
            category_ids, child, category_contacts.c.category_id, contacts.c.id, page
        )
        return (await self.session.execute(stmt)).all()
