"""All SQL about campaigns: reads, draft-side writes, and dispatch's status transitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Row,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page
from app.db.reads import Rows, in_ids, rows
from app.models import Campaign, CampaignStatus, MessageStatus, campaign_categories
from app.models import Message as MessageModel

campaigns = Campaign.__table__
# Core's insert/update/delete take a Table; `__table__` is typed as the wider FromClause.
_table = cast(Table, campaigns)
messages = cast(Table, MessageModel.__table__)
_COLUMNS = frozenset(campaigns.c.keys())


@lru_cache(maxsize=64)
def _page(filtered: bool, after: bool, columns: frozenset[str] | None) -> Select:
    """Campaigns newest first, optionally in one status, below a cursor; of `columns` (None:
    all)."""
    wanted = campaigns.c if columns is None else [c for c in campaigns.c if c.name in columns]
    stmt = select(*wanted)
    if filtered:
        stmt = stmt.where(campaigns.c.status == bindparam("status"))
    if after:
        stmt = stmt.where(campaigns.c.id < bindparam("before_id"))
    return stmt.order_by(campaigns.c.id.desc()).limit(bindparam("limit"))


# Built once: the campaign(id) and dashboard paths neither build nor compile them, and
# one prepared statement serves any number of ids.
_BY_IDS = select(campaigns).where(in_ids(campaigns.c.id))
_RECENT = select(campaigns).order_by(campaigns.c.id.desc()).limit(bindparam("limit"))


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self, status: CampaignStatus | None, page: Page, columns: Iterable[str] | None = None
    ) -> Rows:
        """A page, newest first: of the named `columns` (others ignored; `id` always), or
        of every column."""
        values: dict[str, object] = {"limit": page.limit + 1}
        if status is not None:
            values["status"] = status
        if page.before_id is not None:
            values["before_id"] = page.before_id
        wanted = None if columns is None else frozenset(columns) & _COLUMNS | {"id"}
        stmt = _page(status is not None, page.before_id is not None, wanted)
        return await rows(self.session, stmt, values)

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_IDS, {"ids": list(ids)})).named()

    async def recent(self, limit: int) -> Sequence[Any]:
        return (await rows(self.session, _RECENT, {"limit": limit})).named()

    async def get(self, campaign_id: int) -> Row | None:
        stmt = select(campaigns).where(campaigns.c.id == campaign_id)
        return (await self.session.execute(stmt)).first()

    async def sending_started_before(self, seconds_ago: float) -> list[int]:
        """Sending campaigns started over `seconds_ago` (a younger one's own materialize
        message may still be on its way)."""
        stmt = select(campaigns.c.id).where(
            campaigns.c.status == CampaignStatus.SENDING,
            or_(
                campaigns.c.started_at.is_(None),
                campaigns.c.started_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds_ago),
            ),
        )
        return list((await self.session.execute(stmt)).scalars())

    async def ids_with_status(self, status: CampaignStatus) -> list[int]:
        stmt = select(campaigns.c.id).where(campaigns.c.status == status)
        return list((await self.session.execute(stmt)).scalars())

    # -- writes ---------------------------------------------------------------------------

    async def insert(self, values: Mapping[str, Any]) -> Row:
        stmt = insert(_table).values(**values).returning(campaigns)
        return (await self.session.execute(stmt)).one()

    async def get_locked(self, campaign_id: int) -> Row | None:
        """The campaign, its row locked so its status cannot change until the transaction ends."""
        stmt = select(campaigns).where(campaigns.c.id == campaign_id).with_for_update()
        return (await self.session.execute(stmt)).first()

    async def update_if(
        self, campaign_id: int, allowed: Sequence[CampaignStatus], values: Mapping[str, Any]
    ) -> Row | None:
        """Update only while the status is `allowed`, atomically; None otherwise.

        The WHERE clause is the arbiter: of an edit and a concurrent start, or of two
        concurrent starts, exactly one matches. Status transitions go through here too.
        """
        stmt = (
            update(_table)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(allowed))
            .values(**values, updated_at=func.now())
            .returning(campaigns)
        )
        return (await self.session.execute(stmt)).first()

    async def delete_if(self, campaign_id: int, allowed: Sequence[CampaignStatus]) -> bool:
        stmt = (
            delete(_table)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(allowed))
            .returning(campaigns.c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def replace_targets(self, campaign_id: int, category_ids: Sequence[int]) -> None:
        """Make the targets exactly `category_ids`; pairs already present are left alone."""
        await self.session.execute(
            delete(campaign_categories).where(
                campaign_categories.c.campaign_id == campaign_id,
                campaign_categories.c.category_id.not_in(category_ids),
            )
        )
        if category_ids:
            await self.session.execute(
                pg_insert(campaign_categories)
                .values([{"campaign_id": campaign_id, "category_id": c} for c in category_ids])
                .on_conflict_do_nothing()
            )

    async def start_if_due(self, campaign_id: int, now: datetime) -> bool:
        """scheduled → sending once its time has come (a rescheduled campaign is not due)."""
        stmt = (
            update(_table)
            .where(
                campaigns.c.id == campaign_id,
                campaigns.c.status == CampaignStatus.SCHEDULED,
                campaigns.c.scheduled_at <= now,
            )
            .values(status=CampaignStatus.SENDING, started_at=func.now(), updated_at=func.now())
        )
        return (await self.session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]

    async def pause_sending(
        self,
        values: Mapping[str, Any],
        template: tuple[str, str] | None,
        statuses: Sequence[CampaignStatus] = (CampaignStatus.SENDING,),
    ) -> list[int]:
        """sending (or another of `statuses`) → paused with `values`, for every such
        campaign, or those of the template (name, language); returns their ids."""
        stmt = update(_table).where(campaigns.c.status.in_(statuses))
        if template is not None:
            stmt = stmt.where(
                campaigns.c.template_name == template[0],
                campaigns.c.template_language == template[1],
            )
        stmt = stmt.values(status=CampaignStatus.PAUSED, updated_at=func.now(), **values)
        result = await self.session.execute(stmt.returning(campaigns.c.id))
        return sorted(result.scalars())

    async def pause_bound(
        self, values: Mapping[str, Any], number_id: int | None, campaign_id: int | None = None
    ) -> list[int]:
        """sending → paused with `values`: the campaigns bound to sender number `number_id`,
        or the one campaign `campaign_id`; returns their ids."""
        stmt = update(_table).where(campaigns.c.status == CampaignStatus.SENDING)
        if number_id is not None:
            stmt = stmt.where(campaigns.c.sender_number_id == number_id)
        if campaign_id is not None:
            stmt = stmt.where(campaigns.c.id == campaign_id)
        stmt = stmt.values(status=CampaignStatus.PAUSED, updated_at=func.now(), **values)
        result = await self.session.execute(stmt.returning(campaigns.c.id))
        return sorted(result.scalars())

    async def bind_sender(
        self, campaign_id: int, number_id: int | None, statuses: Sequence[CampaignStatus]
    ) -> Row | None:
        """Send through sender number `number_id` (None: the pool), if in one of `statuses`."""
        stmt = (
            update(_table)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(statuses))
            .values(sender_number_id=number_id, updated_at=func.now())
            .returning(*campaigns.c)
        )
        return (await self.session.execute(stmt)).first()

    async def complete_if_done(self, campaign_id: int) -> bool:
        """sending → completed when no message is pending or sending any more."""
        open_messages = exists().where(
            messages.c.campaign_id == campaign_id,
            messages.c.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
        )
        stmt = (
            update(_table)
            .where(
                campaigns.c.id == campaign_id,
                campaigns.c.status == CampaignStatus.SENDING,
                ~open_messages,
            )
            .values(status=CampaignStatus.COMPLETED, completed_at=func.now(), updated_at=func.now())
        )
        return (await self.session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]
