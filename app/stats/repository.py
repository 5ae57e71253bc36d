"""All SQL about the statistics counters: constant-time reads, folding, verification, repair.

The counters are written by triggers (see the `statistics counters` and `statistics
totals` migrations): per campaign in `campaign_counters`, over everything in
`total_counters` and `contact_counters`. Each figure is the SUM over a few shard rows;
folding merges them back into one row per campaign (and one per table), so reads stay a
handful of rows.

The reads are fixed statements built once: a request pays neither building nor
compiling them, and asyncpg reuses one prepared statement whatever the number of ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.reads import rows
from app.models import CampaignStatus, MessageStatus

STATUSES = tuple(status.value for status in MessageStatus)
CAMPAIGN_FIELDS = (*STATUSES, "interactions")
CAMPAIGN_STATUSES = tuple(status.value for status in CampaignStatus)
TOTAL_FIELDS = (
    *CAMPAIGN_FIELDS,
    "categories",
    *(f"campaigns_{status}" for status in CAMPAIGN_STATUSES),
)
CONTACT_FIELDS = ("contacts", "opted_out")


def sums(fields: Sequence[str], prefix: str = "") -> str:
    """SUM over shard rows as bigint (SUM of bigint is numeric), 0 when there are none."""
    return ", ".join(f"coalesce(sum({prefix}{f}), 0)::bigint AS {f}" for f in fields)


def _message_total(status: MessageStatus | None) -> str:
    """The messages in `status` (any status: all of them) as an expression over one row."""
    return status.value if status is not None else " + ".join(STATUSES)


_BY_CAMPAIGNS = text(
    f"SELECT campaign_id, {sums(CAMPAIGN_FIELDS)} FROM campaign_counters"
    " WHERE campaign_id = ANY (CAST(:ids AS bigint[])) GROUP BY campaign_id"
)
_TOTALS = text(f"SELECT {sums(CAMPAIGN_FIELDS)} FROM total_counters")
_MESSAGE_COUNTS = {
    status: text(
        f"SELECT campaign_id, coalesce(sum({_message_total(status)}), 0)::bigint"
        " FROM campaign_counters WHERE campaign_id = ANY (CAST(:ids AS bigint[]))"
        " GROUP BY campaign_id"
    )
    for status in (None, *MessageStatus)
}
_ALL_CAMPAIGNS = " + ".join(f"campaigns_{s}" for s in CAMPAIGN_STATUSES)
_CAMPAIGN_COUNT = {
    status: text(
        f"SELECT coalesce(sum({f'campaigns_{status.value}' if status else _ALL_CAMPAIGNS}), 0)"
        "::bigint FROM total_counters"
    )
    for status in (None, *CampaignStatus)
}
_CATEGORY_COUNT = text("SELECT coalesce(sum(categories), 0)::bigint FROM total_counters")
_CONTACT_COUNT = {
    None: text("SELECT coalesce(sum(contacts), 0)::bigint FROM contact_counters"),
    True: text("SELECT coalesce(sum(opted_out), 0)::bigint FROM contact_counters"),
    False: text("SELECT coalesce(sum(contacts - opted_out), 0)::bigint FROM contact_counters"),
}
_MESSAGE_COUNT = {
    status: text(f"SELECT coalesce(sum({_message_total(status)}), 0)::bigint FROM total_counters")
    for status in (None, *MessageStatus)
}
# The dashboard: two counter tables of a few rows each, whatever the number of contacts,
# messages, campaigns or categories.
_DASHBOARD = text(
    f"SELECT * FROM (SELECT {sums(TOTAL_FIELDS)} FROM total_counters) AS t,"
    f" (SELECT {sums(CONTACT_FIELDS)} FROM contact_counters) AS c"
)


# -- Folding ------------------------------------------------------------------------------
# One statement per table: lock the rows no open transaction holds (SKIP LOCKED, so the
# fold never waits for a writer, and a writer that finds a row taken by the fold adds a
# row of its own instead of waiting), put each group's sum into its lowest shard and
# delete the others. The sums do not change, and a reader sees the rows before or after
# the fold's commit, never half of it.


def _fold(table: str, fields: Sequence[str], key: str | None) -> TextClause:
    group = f"GROUP BY {key}" if key else ""
    keyed = f"{key}, " if key else ""
    match = f"t.{key} = f.{key} AND " if key else ""
    candidates = (
        f"WHERE {key} IN (SELECT {key} FROM {table} GROUP BY {key} HAVING count(*) > 1)"
        if key
        else ""
    )
    return text(
        f"""
        WITH locked AS (
            SELECT * FROM {table} {candidates} FOR UPDATE SKIP LOCKED
        ), folded AS (
            SELECT {keyed}min(shard) AS shard, {", ".join(f"sum({f}) AS {f}" for f in fields)}
            FROM locked {group} HAVING count(*) > 1
        ), removed AS (
            DELETE FROM {table} AS t USING folded AS f, locked AS l
            WHERE {match}t.shard <> f.shard AND l.shard = t.shard
              {f"AND l.{key} = t.{key}" if key else ""}
            RETURNING 1
        ), kept AS (
            UPDATE {table} AS t SET {", ".join(f"{f} = f.{f}" for f in fields)}
            FROM folded AS f WHERE {match}t.shard = f.shard
        )
        SELECT count(*) FROM removed
        """
    )


_FOLDS = (
    _fold("campaign_counters", CAMPAIGN_FIELDS, "campaign_id"),
    _fold("total_counters", TOTAL_FIELDS, None),
    _fold("contact_counters", CONTACT_FIELDS, None),
)
# Rows of campaigns that no longer exist: left by a writer that raced an SQL deletion of
# its campaign (the deletion could not see the row yet). The writer's deltas went into the
# totals too, so removing the row takes them out of the totals as well.
_DROP_ORPHANS = text(
    f"""
    WITH gone AS (
        DELETE FROM campaign_counters
        WHERE (campaign_id, shard) IN (
            SELECT campaign_id, shard FROM campaign_counters AS k
            WHERE NOT EXISTS (SELECT FROM campaigns WHERE id = k.campaign_id)
            FOR UPDATE SKIP LOCKED
        )
        RETURNING *
    ), summed AS (SELECT count(*) AS n, {sums(CAMPAIGN_FIELDS)} FROM gone)
    SELECT n, herald_add_total_counts(
        {", ".join(f"-{f}" if f in CAMPAIGN_FIELDS else "0" for f in TOTAL_FIELDS)})
    FROM summed WHERE n > 0
    """
)


# -- Verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One counter that disagrees with count(*).

    `scope` is a campaign id, 'totals' or 'contacts'; `orphan` marks the rows of a
    campaign that no longer exists (whose count(*) is therefore 0).
    """

    scope: int | str
    field: str
    counted: int
    actual: int
    orphan: bool = False

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
# What the totals must be besides the messages (those are summed from the rows above).
_COMPARE_TOTALS = text(
    f"""
    SELECT {sums(TOTAL_FIELDS)},
           (SELECT count(*) FROM categories) AS actual_categories,
           {
        ", ".join(
            f"(SELECT count(*) FROM campaigns WHERE status = '{s}') AS actual_campaigns_{s}"
            for s in CAMPAIGN_STATUSES
        )
    }
    FROM total_counters
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

_ADD_CAMPAIGN = text(
    f"""
    SELECT herald_add_campaign_counts(CAST(:campaign_id AS bigint),
           {", ".join(f"CAST(:{f} AS bigint)" for f in CAMPAIGN_FIELDS)})
    FROM campaigns WHERE id = :campaign_id
    """
)
_ADD_TOTALS = text(
    f"SELECT herald_add_total_counts({', '.join(f'CAST(:{f} AS bigint)' for f in TOTAL_FIELDS)})"
)
_ADD_CONTACTS = text(
    "SELECT herald_add_contact_counts(CAST(:contacts AS bigint), CAST(:opted_out AS bigint))"
)


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_campaign_ids(self, campaign_ids: Sequence[int]) -> Sequence[Any]:
        """(campaign_id, pending, ..., failed, interactions) per campaign that has counters."""
        return (await rows(self.session, _BY_CAMPAIGNS, {"ids": list(campaign_ids)})).named()

    async def totals(self) -> Any:
        """Messages per status and interactions over every campaign."""
        return (await rows(self.session, _TOTALS)).named()[0]

    async def message_counts(
        self, campaign_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        found = await rows(self.session, _MESSAGE_COUNTS[status], {"ids": list(campaign_ids)})
        return {cid: n for cid, n in found.records}

    async def message_count(self, campaign_id: int | None, status: MessageStatus | None) -> int:
        """Of one campaign, or of all of them."""
        if campaign_id is None:
            return await self._count(_MESSAGE_COUNT[status])
        return (await self.message_counts([campaign_id], status)).get(campaign_id, 0)

    async def campaign_count(self, status: CampaignStatus | None) -> int:
        return await self._count(_CAMPAIGN_COUNT[status])

    async def category_count(self) -> int:
        return await self._count(_CATEGORY_COUNT)

    async def contact_count(self, opted_out: bool | None) -> int:
        """All contacts, or only those who opted out (True) or did not (False)."""
        return await self._count(_CONTACT_COUNT[opted_out])

    async def dashboard(self) -> dict[str, Any]:
        """The audit's consolidated /dashboard/stats (recommendation 7) as one round trip."""
        row = (await rows(self.session, _DASHBOARD)).named()[0]._asdict()
        return {
            "contacts": row["contacts"],
            "opted_out": row["opted_out"],
            "categories": row["categories"],
            "campaigns": {s: row[f"campaigns_{s}"] for s in CAMPAIGN_STATUSES},
            "messages": {f: row[f] for f in CAMPAIGN_FIELDS},
        }

    async def _count(self, statement: TextClause) -> int:
        return int((await rows(self.session, statement)).scalar())

    # -- folding --------------------------------------------------------------------------

    async def fold(self) -> int:
        """Merge shard rows and drop orphan rows; how many rows went. Never waits for writers."""
        removed = 0
        for statement in _FOLDS:
            removed += int((await self.session.execute(statement)).scalar_one())
        orphans = (await self.session.execute(_DROP_ORPHANS)).first()
        return removed + (int(orphans.n) if orphans is not None else 0)

    # -- verification ---------------------------------------------------------------------

    async def drift(self) -> list[Drift]:
        """Every counter that differs from count(*), read in one snapshot.

        Run it in a REPEATABLE READ transaction: counters and rows change in the same
        transactions, so one snapshot sees them agree unless a counter really drifted,
        however busy the database is.
        """
        found: list[Drift] = []
        actual_totals = dict.fromkeys(TOTAL_FIELDS, 0)
        for row in (await self.session.execute(_COMPARE_CAMPAIGNS)).mappings():
            for f in CAMPAIGN_FIELDS:
                counted, actual = int(row[f"counted_{f}"]), int(row[f"actual_{f}"])
                if not row["known"]:
                    actual = 0  # the campaign is gone: its rows must go too
                actual_totals[f] += actual
                if counted != actual:
                    found.append(Drift(row["campaign_id"], f, counted, actual, not row["known"]))
        totals = (await self.session.execute(_COMPARE_TOTALS)).one()._mapping
        for f in TOTAL_FIELDS:
            actual = actual_totals[f] if f in CAMPAIGN_FIELDS else int(totals[f"actual_{f}"])
            if int(totals[f]) != actual:
                found.append(Drift("totals", f, int(totals[f]), actual))
        contacts = (await self.session.execute(_COMPARE_CONTACTS)).one()._mapping
        for f in CONTACT_FIELDS:
            counted, actual = int(contacts[f"counted_{f}"]), int(contacts[f"actual_{f}"])
            if counted != actual:
                found.append(Drift("contacts", f, counted, actual))
        return found

    async def repair(self, drifts: Sequence[Drift]) -> None:
        """Add each drift's correction the way the triggers add deltas; drop orphan rows.

        Corrections are additions, like the triggers' own writes, so they stay right
        even when workers and webhooks moved the same counters since the snapshot.
        Dropping orphan rows takes them out of the totals (as folding does), so the
        totals' correction gives back what the snapshot's orphans held.
        """
        per_campaign: dict[int, dict[str, int]] = {}
        totals: dict[str, int] = {}
        contacts: dict[str, int] = {}
        for drift in drifts:
            if drift.scope == "contacts":
                contacts[drift.field] = drift.delta
            elif drift.scope == "totals":
                totals[drift.field] = totals.get(drift.field, 0) + drift.delta
            elif drift.orphan:
                totals[drift.field] = totals.get(drift.field, 0) + drift.counted
            else:
                per_campaign.setdefault(int(drift.scope), {})[drift.field] = drift.delta
        for campaign_id, deltas in sorted(per_campaign.items()):
            await self.session.execute(
                _ADD_CAMPAIGN, {"campaign_id": campaign_id, **_zeros(CAMPAIGN_FIELDS, deltas)}
            )
        await self.session.execute(_DROP_ORPHANS)
        if any(totals.values()):
            await self.session.execute(_ADD_TOTALS, _zeros(TOTAL_FIELDS, totals))
        if contacts:
            await self.session.execute(_ADD_CONTACTS, _zeros(CONTACT_FIELDS, contacts))


def _zeros(fields: Sequence[str], deltas: dict[str, int]) -> dict[str, int]:
    return {f: deltas.get(f, 0) for f in fields}
