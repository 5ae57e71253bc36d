"""All SQL about contacts, their WhatsApp availability and opt-outs included."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page, page_parameters, page_per_parent
from app.db.reads import Rows, in_ids, rows
from app.errors import Duplicate
from app.models import Contact, WhatsAppStatus, category_contacts

contacts = Contact.__table__
# Core's insert/update/delete take a Table; `__table__` is typed as the wider FromClause.
_table = cast(Table, contacts)
_COLUMNS = frozenset(contacts.c.keys())


@dataclass(frozen=True)
class ContactFilter:
    search: str | None = None
    category_id: int | None = None
    whatsapp_status: WhatsAppStatus | None = None
    opted_out: bool | None = None

    def shape(self) -> tuple[bool, bool, bool, bool | None]:
        """Which clauses apply: statements are built once per shape, values bound."""
        return (
            bool(self.search),
            self.category_id is not None,
            self.whatsapp_status is not None,
            self.opted_out,
        )

    def values(self) -> dict[str, object]:
        values: dict[str, object] = {}
        if self.search:
            values["pattern"] = f"%{_escape_like(self.search)}%"
        if self.category_id is not None:
            values["category_id"] = self.category_id
        if self.whatsapp_status is not None:
            values["whatsapp_status"] = self.whatsapp_status
        return values


def _where(shape: tuple[bool, bool, bool, bool | None]) -> ColumnElement[bool]:
    search, category, status, opted_out = shape
    clauses: list[ColumnElement[bool]] = []
    if search:
        pattern = bindparam("pattern", type_=Text)
        clauses.append(or_(contacts.c.name.ilike(pattern), contacts.c.phone.ilike(pattern)))
    if category:
        clauses.append(
            contacts.c.id.in_(
                select(category_contacts.c.contact_id).where(
                    category_contacts.c.category_id == bindparam("category_id")
                )
            )
        )
    if status:
        clauses.append(contacts.c.whatsapp_status == bindparam("whatsapp_status"))
    if opted_out is not None:
        clauses.append(
            contacts.c.opted_out_at.is_not(None) if opted_out else contacts.c.opted_out_at.is_(None)
        )
    return and_(True, *clauses)


@lru_cache(maxsize=64)
def _page(
    shape: tuple[bool, bool, bool, bool | None], after: bool, columns: frozenset[str] | None
) -> Select:
    wanted = contacts.c if columns is None else [c for c in contacts.c if c.name in columns]
    stmt = select(*wanted).where(_where(shape))
    if after:
        stmt = stmt.where(contacts.c.id < bindparam("before_id"))
    return stmt.order_by(contacts.c.id.desc()).limit(bindparam("limit"))


@lru_cache(maxsize=32)
def _count(shape: tuple[bool, bool, bool, bool | None]) -> Select:
    return select(func.count()).select_from(contacts).where(_where(shape))


_BY_IDS = select(contacts).where(in_ids(contacts.c.id))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@lru_cache(maxsize=2)
def _page_per_category(after: bool) -> Select:
    child = select(contacts).join(
        category_contacts, category_contacts.c.contact_id == contacts.c.id
    )
    return page_per_parent(child, category_contacts.c.category_id, contacts.c.id, after)


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self, where: ContactFilter, page: Page, columns: Iterable[str] | None = None
    ) -> Rows:
        """A page, newest first: of the named `columns` (others ignored; `id` always), or
        of every column."""
        values = page.values(**where.values())
        wanted = None if columns is None else frozenset(columns) & _COLUMNS | {"id"}
        return await rows(
            self.session, _page(where.shape(), page.before_id is not None, wanted), values
        )

    async def count(self, where: ContactFilter) -> int:
        """count(*); count_contacts (app/contacts/service.py) asks the counters first."""
        found = await rows(self.session, _count(where.shape()), where.values())
        return int(found.scalar())

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_IDS, {"ids": list(ids)})).named()

    async def page_per_category(self, category_ids: Sequence[int], page: Page) -> Sequence[Any]:
        stmt = _page_per_category(page.before_id is not None)
        return (await rows(self.session, stmt, page_parameters(category_ids, page))).named()

    # -- writes ---------------------------------------------------------------------------

    async def insert(self, phone: str, name: str | None, attributes: dict[str, Any]) -> Row | None:
        """The new contact, or None when the phone is taken.

        ON CONFLICT also settles a race: a concurrent insert of the same phone makes this
        one wait, then do nothing, instead of failing.
        """
        stmt = (
            pg_insert(_table)
            .values(phone=phone, name=name, attributes=attributes)
            .on_conflict_do_nothing(index_elements=[contacts.c.phone])
            .returning(contacts)
        )
        return (await self.session.execute(stmt)).first()

    async def update(self, contact_id: int, values: Mapping[str, Any]) -> Row | None:
        """Apply column values; None if the contact does not exist. A taken phone → Duplicate."""
        stmt = (
            update(_table)
            .where(contacts.c.id == contact_id)
            .values(**values, updated_at=func.now())
            .returning(contacts)
        )
        try:
            return (await self.session.execute(stmt)).first()
        except IntegrityError as exc:
            # The unique index is the arbiter (a check-then-write would race); the caller's
            # savepoint rolls the failed statement back.
            if _violated(exc) == PHONE_UNIQUE:
                raise Duplicate("Contact", "phone", values["phone"]) from None
            raise

    async def delete(self, contact_id: int) -> bool:
        stmt = delete(_table).where(contacts.c.id == contact_id).returning(contacts.c.id)
        return (await self.session.execute(stmt)).first() is not None

    async def existing_ids(self, ids: Sequence[int]) -> set[int]:
        """Which of `ids` exist, locked against deletion until the transaction ends."""
        stmt = select(contacts.c.id).where(contacts.c.id.in_(ids)).with_for_update(key_share=True)
        return set((await self.session.execute(stmt)).scalars())

    async def import_rows(self, rows: Sequence[ImportRow], update_existing: bool) -> Sequence[Row]:
        """Insert (or upsert) many contacts in ONE statement, whatever their number.

        Rows arrive as three parallel arrays unnested server-side, so the statement and its
        parameter count stay constant. Returned rows carry `inserted` (false: updated); with
        `update_existing` off, phones already present are absent from the result.
        """
        params = {
            "phones": [r.phone for r in rows],
            "names": [r.name for r in rows],
            "attributes": [orjson.dumps(r.attributes).decode() for r in rows],
        }
        stmt = _UPSERT if update_existing else _INSERT_NEW
        return (await self.session.execute(stmt, params)).all()

    async def phones(self, ids: Sequence[int]) -> dict[int, str]:
        stmt = select(contacts.c.id, contacts.c.phone).where(contacts.c.id.in_(ids))
        return {row.id: row.phone for row in await self.session.execute(stmt)}

    async def unchecked_ids(self) -> list[int]:
        stmt = (
            select(contacts.c.id)
            .where(contacts.c.whatsapp_status == WhatsAppStatus.UNKNOWN)
            .order_by(contacts.c.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def mark_invalid(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(
                update(_table)
                .where(contacts.c.id.in_(ids))
                .values(
                    whatsapp_status=WhatsAppStatus.INVALID,
                    whatsapp_checked_at=func.now(),
                    updated_at=func.now(),
                )
            )

    async def set_availability(self, valid: Sequence[int], invalid: Sequence[int]) -> None:
        if valid or invalid:
            await self.session.execute(
                _SET_AVAILABILITY, {"valid": list(valid), "invalid": list(invalid)}
            )

    async def wrote(self, phone: str, at: datetime) -> None:
        """The contact messaged the business at `at`: its customer-service window opens."""
        await self.session.execute(
            update(_table)
            .where(contacts.c.phone == phone)
            .values(last_inbound_at=func.greatest(contacts.c.last_inbound_at, at))
        )

    async def opt_out(self, phone: str) -> int | None:
        """Record the opt-out once (the first time wins); the contact's id, if known."""
        stmt = (
            update(_table)
            .where(contacts.c.phone == phone)
            .values(opted_out_at=func.coalesce(contacts.c.opted_out_at, func.now()))
            .returning(contacts.c.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()


PHONE_UNIQUE = "uq_contacts_phone"


@dataclass(frozen=True)
class ImportRow:
    phone: str  # E.164, unique within one import
    name: str | None
    attributes: dict[str, Any]


def _violated(exc: IntegrityError) -> str | None:
    """The name of the constraint a failed statement violated (asyncpg reports it)."""
    return getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)


_IMPORT = """
    INSERT INTO contacts (phone, name, attributes)
    SELECT r.phone, r.name, r.attributes::jsonb
    FROM unnest(:phones, :names, :attributes) AS r(phone, name, attributes)
    ON CONFLICT (phone) DO {conflict}
    RETURNING contacts.*, (xmax = 0) AS inserted
"""
_IMPORT_PARAMS = (
    bindparam("phones", type_=ARRAY(Text)),
    bindparam("names", type_=ARRAY(Text)),
    bindparam("attributes", type_=ARRAY(Text)),
)
_INSERT_NEW = text(_IMPORT.format(conflict="NOTHING")).bindparams(*_IMPORT_PARAMS)
# An import row without a name keeps the stored one; its attributes merge over the stored ones.
_UPSERT = text(
    _IMPORT.format(
        conflict="""UPDATE SET
            name = COALESCE(EXCLUDED.name, contacts.name),
            attributes = contacts.attributes || EXCLUDED.attributes,
            updated_at = now()"""
    )
).bindparams(*_IMPORT_PARAMS)

_SET_AVAILABILITY = text(
    """
    UPDATE contacts c
    SET whatsapp_status = CASE WHEN c.id = ANY(:invalid) THEN 'invalid' ELSE 'valid' END,
        whatsapp_checked_at = now(), updated_at = now()
    WHERE c.id = ANY(:valid) OR c.id = ANY(:invalid)
    """
).bindparams(
    bindparam("valid", type_=ARRAY(BigInteger)), bindparam("invalid", type_=ARRAY(BigInteger))
)
