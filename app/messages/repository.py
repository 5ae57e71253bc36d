"""All SQL about messages: pages and counts, and dispatch's materializing, claiming,
recording and status webhooks.

Every status change is a conditional UPDATE, so a late, duplicate or out-of-order
writer (a webhook, a slow worker, the sweeper) can never move a message backwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Text, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.messages.columns import MessageColumns, page_per_owner_select, page_select
from app.models import Message, MessageStatus
from app.pagination import Page, page_parameters
from app.reads import Rows, rows
from app.stats.repository import StatsRepository

messages = Message.__table__


_BY_IDS = select(messages).where(messages.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))


def _status(status: MessageStatus | None) -> dict[str, object]:
    return {} if status is None else {"status": status}


_MATERIALIZE = text(
    """
    INSERT INTO messages (campaign_id, contact_id)
    SELECT DISTINCT CAST(:campaign_id AS bigint), cc.contact_id
    FROM campaign_categories t
    JOIN category_contacts cc ON cc.category_id = t.category_id
    JOIN contacts c ON c.id = cc.contact_id
    WHERE t.campaign_id = :campaign_id
      AND c.opted_out_at IS NULL
      AND c.whatsapp_status <> 'invalid'
    ON CONFLICT (campaign_id, contact_id) DO NOTHING
    """
)

# SKIP LOCKED lets several workers claim disjoint batches of one campaign concurrently.
_CLAIM = text(
    """
    WITH picked AS (
        SELECT id FROM messages
        WHERE campaign_id = :campaign_id AND status = 'pending'
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m
    SET status = 'sending', attempts = m.attempts + 1, updated_at = now()
    FROM picked, contacts c
    WHERE m.id = picked.id AND c.id = m.contact_id
    RETURNING m.id, m.contact_id, c.phone, c.name, c.attributes,
              c.opted_out_at IS NOT NULL AS opted_out,
              c.whatsapp_status = 'invalid' AS invalid
    """
)

# A webhook may have advanced the message already; keep its status, fill the id.
_RECORD_SENT = text(
    """
    UPDATE messages m
    SET status = CASE WHEN m.status = 'sending' THEN 'sent' ELSE m.status END,
        provider_message_id = COALESCE(m.provider_message_id, v.pid),
        sent_at = COALESCE(m.sent_at, now()),
        updated_at = now()
    FROM unnest(:ids, :pids) AS v(id, pid)
    WHERE m.id = v.id
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("pids", type_=ARRAY(Text)))

_RECORD_FAILED = text(
    """
    UPDATE messages m
    SET status = 'failed', error = v.error, failed_at = now(), updated_at = now()
    FROM unnest(:ids, :errors) AS v(id, error)
    WHERE m.id = v.id AND m.status = 'sending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("errors", type_=ARRAY(Text)))

# Claimed but never handed to the provider (the worker hit an error first): claimable again.
_RELEASE = text(
    """
    UPDATE messages
    SET status = 'pending', attempts = attempts - 1, updated_at = now()
    WHERE id = ANY(:ids) AND status = 'sending'
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))

_OPEN_COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'sending') AS sending
    FROM messages
    WHERE campaign_id = :campaign_id AND status IN ('pending', 'sending')
    """
)

# A message left `sending` past the sending timeout has an unknown fate: its worker died
# between claiming and recording it. Status webhooks (matched by the id echoed in
# biz_opaque_callback_data) settle most of them during the grace period; after it, a
# message handed over once goes back to pending (one automatic re-send), and one already
# re-sent is failed "unknown". Without webhooks nothing can settle them: failed "unknown".
_RECONCILE = text(
    """
    WITH unknown AS (
        SELECT id, attempts FROM messages
        WHERE campaign_id = :campaign_id AND status = 'sending'
          AND updated_at < now() - make_interval(secs => :older_than)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m
    SET status = CASE WHEN :resend AND u.attempts <= 1 THEN 'pending' ELSE 'failed' END,
        error = CASE WHEN :resend AND u.attempts <= 1 THEN NULL ELSE 'unknown' END,
        failed_at = CASE WHEN :resend AND u.attempts <= 1 THEN NULL ELSE now() END,
        updated_at = now()
    FROM unknown u
    WHERE m.id = u.id
    RETURNING m.status
    """
)

_FAIL_PENDING = text(
    """
    UPDATE messages
    SET status = 'failed', error = :reason, failed_at = now(), updated_at = now()
    WHERE campaign_id = :campaign_id AND status = 'pending'
    """
)

# Undeliverable numbers and opted-out contacts are never retried.
_RETRY_FAILED = text(
    """
    UPDATE messages m
    SET status = 'pending', error = NULL, failed_at = NULL, updated_at = now()
    FROM contacts c
    WHERE m.campaign_id = :campaign_id AND m.status = 'failed'
      AND c.id = m.contact_id AND c.opted_out_at IS NULL AND c.whatsapp_status <> 'invalid'
    """
)

_CAMPAIGNS_WITH_SENDING = text("SELECT DISTINCT campaign_id FROM messages WHERE status = 'sending'")

# Match by the provider's id, or by our id echoed in biz_opaque_callback_data when the
# worker died before recording the provider's id.
_MATCH = "(provider_message_id = :wamid OR (id = :message_id AND provider_message_id IS NULL))"

_TIMESTAMPS = {
    MessageStatus.SENT: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz))",
    MessageStatus.DELIVERED: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz)), "
    "delivered_at = COALESCE(delivered_at, :at)",
    MessageStatus.READ: "sent_at = COALESCE(sent_at, CAST(:at AS timestamptz)), "
    "delivered_at = COALESCE(delivered_at, :at), read_at = COALESCE(read_at, :at)",
}
_ADVANCES_FROM = {
    MessageStatus.SENT: "('pending', 'sending')",
    MessageStatus.DELIVERED: "('pending', 'sending', 'sent', 'failed')",
    MessageStatus.READ: "('pending', 'sending', 'sent', 'delivered', 'failed')",
}
_STATUS_UPDATES = {
    status: text(
        f"""
        UPDATE messages
        SET status = CASE WHEN status IN {_ADVANCES_FROM[status]}
                          THEN CAST(:status AS varchar) ELSE status END,
            provider_message_id = COALESCE(provider_message_id, :wamid),
            {_TIMESTAMPS[status]},
            updated_at = now()
        WHERE {_MATCH}
        RETURNING campaign_id, contact_id
        """
    )
    for status in _ADVANCES_FROM
}
_STATUS_UPDATES[MessageStatus.FAILED] = text(
    f"""
    UPDATE messages
    SET status = 'failed', error = :error, failed_at = :at, updated_at = now(),
        provider_message_id = COALESCE(provider_message_id, :wamid)
    WHERE {_MATCH} AND status IN ('pending', 'sending', 'sent')
    RETURNING campaign_id, contact_id
    """
)

_MESSAGE_BY_WAMID = text(
    "SELECT id, contact_id, campaign_id FROM messages WHERE provider_message_id = :wamid"
)
_LATEST_MESSAGE_TO = text(
    """
    SELECT m.id, m.contact_id, m.campaign_id
    FROM messages m JOIN contacts c ON c.id = m.contact_id
    WHERE c.phone = :phone
    ORDER BY m.id DESC
    LIMIT 1
    """
)


@dataclass(frozen=True)
class Claimed:
    id: int
    contact_id: int
    phone: str
    name: str | None
    attributes: dict[str, Any]
    opted_out: bool
    invalid: bool


@dataclass(frozen=True)
class OpenCounts:
    pending: int
    sending: int


@dataclass(frozen=True)
class Reconciled:
    resent: int
    failed: int


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
        values: dict[str, object] = {"limit": page.limit + 1, **_status(status)}
        if campaign_id is not None:
            values["campaign_id"] = campaign_id
        if page.before_id is not None:
            values["before_id"] = page.before_id
        return await rows(self.session, stmt, values)

    async def by_ids(self, ids: Sequence[int]) -> Rows:
        return await rows(self.session, _BY_IDS, {"ids": list(ids)})

    async def count(self, campaign_id: int | None, status: MessageStatus | None) -> int:
        """From the counters: constant time however many messages there are."""
        stats = StatsRepository(self.session)
        if campaign_id is None:
            return await stats.message_count(status)
        return (await stats.message_counts([campaign_id], status)).get(campaign_id, 0)

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

    async def count_per_campaign(
        self, campaign_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        return await StatsRepository(self.session).message_counts(campaign_ids, status)

    async def count_per_contact(
        self, contact_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        stmt = select(messages.c.contact_id, func.count()).where(
            messages.c.contact_id.in_(contact_ids)
        )
        if status is not None:
            stmt = stmt.where(messages.c.status == status)
        rows = await self.session.execute(stmt.group_by(messages.c.contact_id))
        return {cid: n for cid, n in rows.all()}

    async def _rowcount(self, stmt: Any, **params: Any) -> int:
        result = await self.session.execute(stmt, params)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def materialize(self, campaign_id: int) -> int:
        """One pending message per distinct eligible target contact; re-running adds none."""
        return await self._rowcount(_MATERIALIZE, campaign_id=campaign_id)

    async def claim(self, campaign_id: int, limit: int) -> list[Claimed]:
        result = await self.session.execute(_CLAIM, {"campaign_id": campaign_id, "limit": limit})
        return [Claimed(**row._mapping) for row in result]

    async def record_sent(self, ids: Sequence[int], provider_ids: Sequence[str]) -> None:
        if ids:
            await self.session.execute(_RECORD_SENT, {"ids": list(ids), "pids": list(provider_ids)})

    async def record_failed(self, ids: Sequence[int], errors: Sequence[str]) -> None:
        if ids:
            await self.session.execute(_RECORD_FAILED, {"ids": list(ids), "errors": list(errors)})

    async def release(self, ids: Sequence[int]) -> None:
        if ids:
            await self.session.execute(_RELEASE, {"ids": list(ids)})

    async def open_counts(self, campaign_id: int) -> OpenCounts:
        row = (await self.session.execute(_OPEN_COUNTS, {"campaign_id": campaign_id})).one()
        return OpenCounts(pending=row.pending, sending=row.sending)

    async def reconcile(self, campaign_id: int, older_than_s: float, resend: bool) -> Reconciled:
        """Settle messages `sending` for longer than `older_than_s`: re-send once, or fail."""
        result = await self.session.execute(
            _RECONCILE, {"campaign_id": campaign_id, "older_than": older_than_s, "resend": resend}
        )
        statuses = list(result.scalars())
        resent = statuses.count(MessageStatus.PENDING.value)
        return Reconciled(resent=resent, failed=len(statuses) - resent)

    async def fail_pending(self, campaign_id: int, reason: str) -> int:
        return await self._rowcount(_FAIL_PENDING, campaign_id=campaign_id, reason=reason)

    async def retry_failed(self, campaign_id: int) -> int:
        return await self._rowcount(_RETRY_FAILED, campaign_id=campaign_id)

    async def campaigns_with_sending(self) -> list[int]:
        return list((await self.session.execute(_CAMPAIGNS_WITH_SENDING)).scalars())

    async def apply_status(
        self,
        status: MessageStatus,
        provider_message_id: str,
        message_id: int | None,
        at: datetime,
        error: str | None = None,
    ) -> list[tuple[int, int]]:
        """Apply one provider status; returns (campaign_id, contact_id) of what it matched."""
        params: dict[str, Any] = {
            "wamid": provider_message_id,
            "message_id": message_id if message_id is not None else -1,
            "at": at,
        }
        if status is MessageStatus.FAILED:
            params["error"] = error or "failed"
        else:
            params["status"] = status.value
        result = await self.session.execute(_STATUS_UPDATES[status], params)
        return [(row.campaign_id, row.contact_id) for row in result]

    async def for_inbound(self, context_wamid: str | None, phone: str) -> MessageRef | None:
        """The message an inbound reply answers, else the latest one sent to that number."""
        row = None
        if context_wamid:
            row = (await self.session.execute(_MESSAGE_BY_WAMID, {"wamid": context_wamid})).first()
        if row is None:
            row = (await self.session.execute(_LATEST_MESSAGE_TO, {"phone": phone})).first()
        return None if row is None else MessageRef(row.id, row.contact_id, row.campaign_id)
