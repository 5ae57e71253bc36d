"""All SQL about messages: pages and counts here, and dispatch's and status webhooks'
statements (materializing, claiming, recording, deferring) in app/messages/statements.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page, page_parameters
from app.db.reads import Rows, in_ids, rows
from app.messages import statements as sql
from app.messages.columns import WHOLE, MessageColumns, page_per_owner_select, page_select
from app.models import Message, MessageStatus

messages = Message.__table__


# Whole messages with their contacts (`contact__<name>`), as a page of every column has them.
_BY_IDS = WHOLE.select(filtered=False).where(in_ids(messages.c.id))


def _count_per_contact(filtered: bool) -> Select:
    stmt = select(messages.c.contact_id, func.count()).where(in_ids(messages.c.contact_id))
    if filtered:
        stmt = stmt.where(messages.c.status == bindparam("status"))
    return stmt.group_by(messages.c.contact_id)


_COUNT_PER_CONTACT = {filtered: _count_per_contact(filtered) for filtered in (False, True)}


def _status(status: MessageStatus | None) -> dict[str, object]:
    return {} if status is None else {"status": status}


@dataclass(frozen=True)
class Claimed:
    id: int
    contact_id: int
    phone: str
    name: str | None
    attributes: dict[str, Any]
    opted_out: bool
    invalid: bool
    window_open: bool  # the contact wrote in the last 24 h: not counted by the limit


@dataclass(frozen=True)
class OpenCounts:
    pending: int
    sending: int


@dataclass(frozen=True)
class Reconciled:
    resent: int
    failed: int


@dataclass(frozen=True)
class Deferral:
    """A message put back by a retry-later error (see sql.DEFER)."""

    id: int
    delay_s: float
    grow: float
    allowed: int
    error: str
    code: int | None


@dataclass(frozen=True)
class Deferred:
    pending: int
    failed: int  # past their code's allowance


@dataclass(frozen=True)
class MessageRef:
    id: int
    contact_id: int
    campaign_id: int


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        campaign_id: int | None,
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        stmt = page_select(
            columns, status is not None, campaign_id is not None, page.before_id is not None
        )
        values = page.values(**_status(status))
        if campaign_id is not None:
            values["campaign_id"] = campaign_id
        return await rows(self.session, stmt, values)

    async def by_ids(self, ids: Sequence[int]) -> Rows:
        """Whole messages, each with its contact's columns (`contact__<name>`)."""
        return await rows(self.session, _BY_IDS, {"ids": list(ids)})

    async def page_per_campaign(
        self,
        campaign_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        return await self._page_per_owner("campaign_id", campaign_ids, status, page, columns)

    async def page_per_contact(
        self,
        contact_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        return await self._page_per_owner("contact_id", contact_ids, status, page, columns)

    async def _page_per_owner(
        self,
        owner: str,
        owner_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        stmt = page_per_owner_select(owner, columns, status is not None, page.before_id is not None)
        values = page_parameters(owner_ids, page, **_status(status))
        return await rows(self.session, stmt, values)

    async def count_per_contact(
        self, contact_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        values = {"ids": list(contact_ids), **_status(status)}
        found = await rows(self.session, _COUNT_PER_CONTACT[status is not None], values)
        return {cid: n for cid, n in found.records}

    async def _rowcount(self, stmt: Any, **params: Any) -> int:
        result = await self.session.execute(stmt, params)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def materialize(self, campaign_id: int) -> int:
        """One pending message per distinct eligible target contact; re-running adds none."""
        return await self._rowcount(sql.MATERIALIZE, campaign_id=campaign_id)

    async def claim(self, campaign_id: int, limit: int, now: datetime) -> list[Claimed]:
        """Up to `limit` pending messages due at `now` (dispatch's clock), now `sending`."""
        params = {"campaign_id": campaign_id, "limit": limit, "now": now}
        return [Claimed(**row._mapping) for row in await self.session.execute(sql.CLAIM, params)]

    async def wait_for_window(self, waiting: Sequence[tuple[int, datetime]]) -> None:
        """Claimed messages the messaging limit refused: pending again, each until its slot."""
        if waiting:
            ids, ats = zip(*waiting, strict=True)
            await self.session.execute(sql.WAIT_FOR_WINDOW, {"ids": list(ids), "ats": list(ats)})

    async def reached_since(self, since: datetime) -> list[tuple[str, int]]:
        rows = await self.session.execute(sql.REACHED_SINCE, {"since": since})
        return [(phone, int(ms)) for phone, ms in rows]

    async def open_window_pending(
        self, campaign_ids: Sequence[int], now: datetime
    ) -> dict[int, int]:
        params = {"ids": list(campaign_ids), "now": now}
        return {c: n for c, n in await self.session.execute(sql.OPEN_WINDOW_PENDING, params)}

    async def record_sent(self, ids: Sequence[int], provider_ids: Sequence[str]) -> None:
        if ids:
            await self.session.execute(
                sql.RECORD_SENT, {"ids": list(ids), "pids": list(provider_ids)}
            )

    async def record_failed(
        self, ids: Sequence[int], errors: Sequence[str], codes: Sequence[int | None]
    ) -> None:
        if ids:
            await self.session.execute(
                sql.RECORD_FAILED, {"ids": list(ids), "errors": list(errors), "codes": list(codes)}
            )

    async def defer(self, deferrals: Sequence[Deferral]) -> Deferred:
        if not deferrals:
            return Deferred(0, 0)
        result = await self.session.execute(
            sql.DEFER,
            {
                "ids": [d.id for d in deferrals],
                "delays": [d.delay_s for d in deferrals],
                "grows": [d.grow for d in deferrals],
                "alloweds": [d.allowed for d in deferrals],
                "errors": [d.error for d in deferrals],
                "codes": [d.code for d in deferrals],
            },
        )
        statuses = list(result.scalars())
        pending = statuses.count(MessageStatus.PENDING.value)
        return Deferred(pending, len(statuses) - pending)

    async def next_due_s(self, campaign_id: int, now: datetime) -> float | None:
        """Seconds from `now` until the campaign's first deferred message is due; None if
        none is."""
        params = {"campaign_id": campaign_id, "now": now}
        wait = (await self.session.execute(sql.NEXT_DUE, params)).scalar()
        return None if wait is None else float(wait)

    async def release(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(sql.RELEASE, {"ids": list(ids)})

    async def open_counts(self, campaign_id: int) -> OpenCounts:
        row = (await self.session.execute(sql.OPEN_COUNTS, {"campaign_id": campaign_id})).one()
        return OpenCounts(pending=row.pending, sending=row.sending)

    async def reconcile(self, campaign_id: int, older_than_s: float, resend: bool) -> Reconciled:
        """Settle messages `sending` for longer than `older_than_s`: re-send once, or fail."""
        result = await self.session.execute(
            sql.RECONCILE,
            {"campaign_id": campaign_id, "older_than": older_than_s, "resend": resend},
        )
        statuses = list(result.scalars())
        resent = statuses.count(MessageStatus.PENDING.value)
        return Reconciled(resent=resent, failed=len(statuses) - resent)

    async def fail_pending(self, campaign_id: int, reason: str) -> int:
        return await self._rowcount(sql.FAIL_PENDING, campaign_id=campaign_id, reason=reason)

    async def retry_failed(self, campaign_id: int, held_code: int | None) -> int:
        """Failed messages back to pending, except those failed with `held_code` in the
        last 24 hours (None: none held)."""
        return await self._rowcount(sql.RETRY_FAILED, campaign_id=campaign_id, held_code=held_code)

    async def held_back(self, campaign_id: int, held_code: int) -> int:
        """Failed messages `retry_failed` leaves alone for `held_code`."""
        params = {"campaign_id": campaign_id, "held_code": held_code}
        return int((await self.session.execute(sql.HELD_BACK, params)).scalar_one())

    async def campaigns_with_sending(self) -> list[int]:
        return list((await self.session.execute(sql.CAMPAIGNS_WITH_SENDING)).scalars())

    async def apply_status(
        self,
        status: MessageStatus,
        provider_message_id: str,
        message_id: int | None,
        at: datetime,
        error: str | None = None,
        code: int | None = None,
    ) -> list[tuple[int, int]]:
        """Apply one provider status; returns (campaign_id, contact_id) of what it matched."""
        params: dict[str, Any] = {
            "wamid": provider_message_id,
            "message_id": message_id if message_id is not None else -1,
            "at": at,
        }
        if status is MessageStatus.FAILED:
            params["error"] = error or "failed"
            params["code"] = code
        else:
            params["status"] = status.value
        result = await self.session.execute(sql.STATUS_UPDATES[status], params)
        return [(row.campaign_id, row.contact_id) for row in result]

    async def requeue(
        self,
        provider_message_id: str,
        message_id: int | None,
        delay_s: float,
        deferred: bool,
        allowed: int,
    ) -> list[tuple[int, int]]:
        """Put a message an error webhook reported back to pending (see sql.REQUEUE); returns
        (campaign_id, contact_id) of what it matched, nothing when it must fail instead."""
        params = {
            "wamid": provider_message_id,
            "message_id": message_id if message_id is not None else -1,
            "delay": delay_s,
            "defer": int(deferred),
            "allowed": allowed,
        }
        result = await self.session.execute(sql.REQUEUE, params)
        return [(row.campaign_id, row.contact_id) for row in result]

    async def for_inbound(self, context_wamid: str | None, phone: str) -> MessageRef | None:
        """The message an inbound reply answers, else the latest one sent to that number."""
        row = None
        if context_wamid:
            row = (
                await self.session.execute(sql.MESSAGE_BY_WAMID, {"wamid": context_wamid})
            ).first()
        if row is None:
            row = (await self.session.execute(sql.LATEST_MESSAGE_TO, {"phone": phone})).first()
        return None if row is None else MessageRef(row.id, row.contact_id, row.campaign_id)
