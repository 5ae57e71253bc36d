"""All SQL about the statistics counters: constant-time reads, verification and repair.

The counters are written by triggers (see the `statistics counters` migration); a
campaign's figures are the SUM over its shard rows, at most a handful of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Row, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CampaignCounter, ContactCounter, MessageStatus

campaign_counters = CampaignCounter.__table__
contact_counters = ContactCounter.__table__

STATUSES = tuple(status.value for status in MessageStatus)
CAMPAIGN_FIELDS = (*STATUSES, "interactions")


def _total(expression: Any) -> Any:
    """SUM over shard rows as a bigint (SUM of bigint is numeric), 0 when there are none."""
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


def _sums() -> list[Any]:
    return [_total(campaign_counters.c[f]).label(f) for f in CAMPAIGN_FIELDS]


def global_counts() -> Any:
    """Every campaign's counters summed: one row, read by the dashboard and messageStats."""
    return select(*_sums())


def contact_counts() -> Any:
    return select(
        _total(contact_counters.c.contacts).label("contacts"),
        _total(contact_counters.c.opted_out).label("opted_out"),
    )


def _message_total(status: MessageStatus | None) -> Any:
    """SUM of the messages in `status` (any status: their sum) over the selected rows."""
    if status is not None:
        return _total(campaign_counters.c[status.value])
    columns = [campaign_counters.c[s] for s in STATUSES]
    return _total(sum(columns[1:], columns[0]))


@dataclass(frozen=True)
class Drift:
    """One counter that disagrees with count(*): `scope` is a campaign id or 'contacts'."""

    scope: int | str
    field: str
    counted: int
    actual: int

    @property
    def delta(self) -> int:
        return self.actual - self.counted


# Counters and count(*) of one snapshot, side by side. A campaign with no messages has
# no counter rows or rows summing to zero; rows of a deleted campaign are orphans.
_COMPARE_CAMPAIGNS = text(
    f"""
    WITH counted AS (
        SELECT campaign_id, {", ".join(f"sum({f}) AS {f}" for f in CAMPAIGN_FIELDS)}
        FROM campaign_counters GROUP BY campaign_id
    ), actual AS (
        SELECT campaign_id,
               {", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)}
        FROM messages GROUP BY campaign_id
    ), touched AS (
        SELECT campaign_id, count(*) AS interactions FROM interactions GROUP BY campaign_id
    )
    SELECT k.campaign_id, k.known,
           {", ".join(f"coalesce(c.{f}, 0) AS counted_{f}" for f in CAMPAIGN_FIELDS)},
           {", ".join(f"coalesce(a.{s}, 0) AS actual_{s}" for s in STATUSES)},
           coalesce(t.interactions, 0) AS actual_interactions
    FROM (
        SELECT campaign_id, bool_or(known) AS known FROM (
            SELECT id AS campaign_id, true AS known FROM campaigns
            UNION ALL SELECT campaign_id, false FROM counted
        ) AS ids GROUP BY campaign_id
    ) AS k
    LEFT JOIN counted AS c USING (campaign_id)
    LEFT JOIN actual AS a USING (campaign_id)
    LEFT JOIN touched AS t USING (campaign_id)
    ORDER BY k.campaign_id
    """
)
_COMPARE_CONTACTS = text(
    """
    SELECT (SELECT coalesce(sum(contacts), 0) FROM contact_counters) AS counted_contacts,
           (SELECT coalesce(sum(opted_out), 0) FROM contact_counters) AS counted_opted_out,
           count(*) AS actual_contacts,
           count(*) FILTER (WHERE opted_out_at IS NOT NULL) AS actual_opted_out
    FROM contacts
    """
)


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_campaign_ids(self, campaign_ids: Sequence[int]) -> Sequence[Row]:
        """(campaign_id, pending, ..., failed, interactions) per campaign that has counters."""
        stmt = (
            select(campaign_counters.c.campaign_id, *_sums())
            .where(campaign_counters.c.campaign_id.in_(campaign_ids))
            .group_by(campaign_counters.c.campaign_id)
        )
        return (await self.session.execute(stmt)).all()

    async def totals(self) -> Row:
        return (await self.session.execute(global_counts())).one()

    async def message_counts(
        self, campaign_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        stmt = (
            select(campaign_counters.c.campaign_id, _message_total(status))
            .where(campaign_counters.c.campaign_id.in_(campaign_ids))
            .group_by(campaign_counters.c.campaign_id)
        )
        return {cid: n for cid, n in (await self.session.execute(stmt)).all()}

    async def message_count(self, status: MessageStatus | None) -> int:
        return int((await self.session.execute(select(_message_total(status)))).scalar_one())

    # -- verification ---------------------------------------------------------------------

    async def drift(self) -> list[Drift]:
        """Every counter that differs from count(*), read in one snapshot.

        Run it in a REPEATABLE READ transaction: counters and rows change in the same
        transactions, so one snapshot sees them agree unless a counter really drifted,
        however busy the database is.
        """
        found: list[Drift] = []
        for row in (await self.session.execute(_COMPARE_CAMPAIGNS)).mappings():
            for f in CAMPAIGN_FIELDS:
                counted, actual = int(row[f"counted_{f}"]), int(row[f"actual_{f}"])
                if not row["known"]:
                    actual = 0  # the campaign is gone: its rows must go too
                if counted != actual:
                    found.append(Drift(row["campaign_id"], f, counted, actual))
        contacts = (await self.session.execute(_COMPARE_CONTACTS)).one()._mapping
        for f in ("contacts", "opted_out"):
            counted, actual = int(contacts[f"counted_{f}"]), int(contacts[f"actual_{f}"])
            if counted != actual:
                found.append(Drift("contacts", f, counted, actual))
        return found

    async def repair(self, drifts: Sequence[Drift]) -> None:
        """Add each drift's correction the way the triggers add deltas; drop orphan rows.

        Corrections are additions, like the triggers' own writes, so they stay right
        even when workers and webhooks moved the same counters since the snapshot.
        """
        per_campaign: dict[int, dict[str, int]] = {}
        per_contacts: dict[str, int] = {}
        for drift in drifts:
            if drift.scope == "contacts":
                per_contacts[drift.field] = drift.delta
            else:
                per_campaign.setdefault(int(drift.scope), {})[drift.field] = drift.delta
        for campaign_id, deltas in sorted(per_campaign.items()):
            await self.session.execute(
                _ADD_CAMPAIGN, {"campaign_id": campaign_id, **_zeros(CAMPAIGN_FIELDS, deltas)}
            )
        if per_contacts:
            await self.session.execute(
                _ADD_CONTACTS, _zeros(("contacts", "opted_out"), per_contacts)
            )
        await self.session.execute(_DELETE_ORPHANS)


def _zeros(fields: Sequence[str], deltas: dict[str, int]) -> dict[str, int]:
    return {f: deltas.get(f, 0) for f in fields}


_ADD_CAMPAIGN = text(
    f"""
    SELECT herald_add_campaign_counts(CAST(:campaign_id AS bigint),
           {", ".join(f"CAST(:{f} AS bigint)" for f in CAMPAIGN_FIELDS)})
    FROM campaigns WHERE id = :campaign_id
    """
)
_ADD_CONTACTS = text(
    "SELECT herald_add_contact_counts(CAST(:contacts AS bigint), CAST(:opted_out AS bigint))"
)
_DELETE_ORPHANS = text(
    "DELETE FROM campaign_counters AS c"
    " WHERE NOT EXISTS (SELECT FROM campaigns WHERE id = c.campaign_id)"
)
