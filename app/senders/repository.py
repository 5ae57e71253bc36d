"""All SQL about sender numbers and the portfolio's reported messaging limit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.db.reads import in_ids, rows
from app.models import MessagingLimit, QualityRating, SenderNumber, SenderStatus
from app.senders.numbers import Number

numbers = SenderNumber.__table__
_numbers = cast(Table, numbers)
limits = cast(Table, MessagingLimit.__table__)

# Dispatch reads both once per batch: one round trip.
_ROUTE = text(
    """
    SELECT s.id, s.phone_number_id, s.display_number, s.throughput, s.quality_rating,
           s.status, s.flagged_reason, l.tier, l.id IS NOT NULL AS reported
    FROM sender_numbers s LEFT JOIN messaging_limit l ON true
    ORDER BY s.id
    """
)
_BY_IDS = select(numbers).where(in_ids(numbers.c.id))
_ALL = select(numbers).order_by(numbers.c.id)


@dataclass(frozen=True)
class Reported:
    """The limit the Cloud API last reported (`tier` None: unlimited), if it did."""

    reported: bool
    tier: int | None


def number_of(row: Any) -> Number:
    return Number(
        id=row.id,
        phone_number_id=row.phone_number_id,
        display_number=row.display_number,
        throughput=row.throughput,
        quality_rating=QualityRating(row.quality_rating),  # a str from the read pool
        status=SenderStatus(row.status),
        flagged_reason=row.flagged_reason,
    )


class SenderRepository:
    def __init__(self, session: Any) -> None:
        self.session = session

    async def numbers_and_limit(self) -> tuple[list[Number], Reported]:
        rows = (await self.session.execute(_ROUTE)).all()
        if not rows:
            return [], await self.reported()
        return [number_of(r) for r in rows], Reported(rows[0].reported, rows[0].tier)

    async def all(self) -> list[Number]:
        return [number_of(r) for r in (await rows(self.session, _ALL)).named()]

    async def by_ids(self, ids: Sequence[int]) -> list[Number]:
        found = await rows(self.session, _BY_IDS, {"ids": list(ids)})
        return [number_of(r) for r in found.named()]

    async def by_phone_number_id(self, phone_number_id: str) -> Number | None:
        stmt = select(numbers).where(numbers.c.phone_number_id == phone_number_id)
        row = (await self.session.execute(stmt)).first()
        return None if row is None else number_of(row)

    async def add(self, phone_number_id: str, display_number: str, throughput: int) -> Number:
        """Add a number, or update the display number and throughput of a known one."""
        stmt = pg_insert(_numbers).values(
            phone_number_id=phone_number_id, display_number=display_number, throughput=throughput
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["phone_number_id"],
            set_={
                "display_number": stmt.excluded.display_number,
                "throughput": stmt.excluded.throughput,
                "updated_at": func.now(),
            },
        )
        row = (await self.session.execute(stmt.returning(*numbers.c))).one()
        return number_of(row)

    async def set_quality(self, display_number: str, values: dict[str, Any]) -> list[Number]:
        """Apply a quality change to the number(s) with that display number."""
        stmt = (
            update(_numbers)
            .where(numbers.c.display_number == display_number)
            .values(updated_at=func.now(), **values)
            .returning(*numbers.c)
        )
        return [number_of(r) for r in await self.session.execute(stmt)]

    async def reported(self) -> Reported:
        row = (await self.session.execute(select(limits.c.tier))).first()
        return Reported(row is not None, None if row is None else row.tier)

    async def report(self, tier: int | None) -> bool:
        """Store a reported limit; whether it changed."""
        before = await self.reported()
        stmt = pg_insert(limits).values(id=1, tier=tier)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={"tier": tier, "reported_at": func.now()}
        )
        await self.session.execute(stmt)
        return not before.reported or before.tier != tier
