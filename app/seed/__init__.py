"""Set-based generator of realistic demo and benchmark data (`herald seed`, `herald dev`, bench).

The statements that generate the rows are in data.py; how the large tables are loaded
without their indexes, constraints and triggers is in bulk.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.models import Template
from app.seed.bulk import BULK_TABLES, COUNTERS, SET_ASIDE, TRIGGERS
from app.seed.data import (
    CAMPAIGN_TARGETS,
    CAMPAIGNS,
    CATEGORIES,
    CONTACTS,
    COUNTRIES,
    INTERACTIONS,
    MESSAGES,
    OPT_OUTS,
    STARTED,
)
from app.templates.service import columns_of
from app.whatsapp.templates import SIMULATED_TEMPLATES

DATA_TABLES = (
    "interactions, messages, campaign_categories, campaigns, category_contacts, "
    "categories, contacts, templates"
)


class SeedError(Exception):
    """The seed cannot run as asked (arguments, or a database that already holds data)."""


@dataclass(frozen=True)
class SeedReport:
    contacts: int
    categories: int
    category_contacts: int
    campaigns: int
    messages: int
    interactions: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.contacts:,} contacts, {self.categories:,} categories "
            f"({self.category_contacts:,} memberships), {self.campaigns:,} campaigns, "
            f"{self.messages:,} messages, {self.interactions:,} interactions "
            f"in {self.seconds:.1f} s"
        )


async def seed(
    target: AsyncEngine | AsyncConnection | AsyncSession,
    contacts: int,
    campaigns: int,
    messages_per_campaign: int,
    *,
    reset: bool = False,
) -> SeedReport:
    """Fill an empty database (or a reset one) with generated data.

    `messages_per_campaign` applies to every campaign that has started (drafts and
    scheduled campaigns have no messages yet). With an engine the seed commits; with a
    connection or session it leaves the commit to the caller.
    """
    if contacts < 1 or campaigns < 0 or messages_per_campaign < 0:
        raise SeedError("contacts must be >= 1; campaigns and messages must be >= 0")
    if messages_per_campaign > contacts:
        raise SeedError(
            f"messages per campaign ({messages_per_campaign}) cannot exceed contacts "
            f"({contacts}): a campaign sends at most one message per contact"
        )
    if isinstance(target, AsyncEngine):
        async with target.begin() as connection:
            return await _seed(connection, contacts, campaigns, messages_per_campaign, reset)
    return await _seed(target, contacts, campaigns, messages_per_campaign, reset)


async def has_data(engine: AsyncEngine) -> bool:
    """Whether the database already holds contacts (`herald dev` seeds only the first time)."""
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT EXISTS (SELECT 1 FROM contacts)"))
        return bool(result.scalar_one())


async def _execute_all(db: AsyncConnection | AsyncSession, statements: tuple[str, ...]) -> None:
    # asyncpg prepares each statement, so a script goes one statement at a time.
    for statement in statements:
        await db.execute(text(statement))


async def _insert_templates(db: AsyncConnection | AsyncSession) -> None:
    """The simulated account's templates, as a sync would store them; a template already
    synced under the same name and language is left as it is."""
    rows = [columns_of(item) for item in SIMULATED_TEMPLATES]
    await db.execute(pg_insert(Template).values(rows).on_conflict_do_nothing())


async def _seed(
    db: AsyncConnection | AsyncSession,
    contacts: int,
    campaigns: int,
    per_campaign: int,
    reset: bool,
) -> SeedReport:
    started = time.perf_counter()
    if (await db.execute(text("SELECT to_regclass('contacts')"))).scalar_one() is None:
        raise SeedError("the database has no Herald tables; run `herald migrate` first")
    if reset:
        await db.execute(text(f"TRUNCATE {DATA_TABLES} RESTART IDENTITY CASCADE"))
    existing = (await db.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    if existing:
        raise SeedError(
            f"the database already has {existing:,} contacts; pass --reset to replace them"
        )
    # Committing a million rows need not wait for each WAL flush; the sorts and index
    # builds of millions of rows stay in memory.
    await db.execute(text("SET LOCAL synchronous_commit = off"))
    await db.execute(text("SET LOCAL work_mem = '256MB'"))
    await db.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
    set_aside = (await db.execute(text(SET_ASIDE))).all()
    for drop, _, _ in set_aside:
        await db.execute(text(drop))
    for table in BULK_TABLES:
        await db.execute(text(TRIGGERS.format(table=table, action="DISABLE")))

    await _execute_all(db, COUNTRIES)
    await db.execute(text(CONTACTS), {"contacts": contacts})
    first, last = (await db.execute(text("SELECT min(id), max(id) FROM contacts"))).one()
    # Messages address contacts by id arithmetic, which needs one contiguous block.
    if last - first + 1 != contacts:
        raise SeedError("contact ids are not contiguous; seed into an empty database")
    await _execute_all(db, CATEGORIES)
    await _insert_templates(db)
    await db.execute(text(CAMPAIGNS), {"campaigns": campaigns})
    await db.execute(text(CAMPAIGN_TARGETS))
    for campaign_id in (await db.execute(text(STARTED))).scalars().all():
        await db.execute(
            text(MESSAGES),
            {
                "campaign_id": campaign_id,
                "first_contact": first,
                "contacts": contacts,
                "per_campaign": per_campaign,
            },
        )
    await db.execute(text(INTERACTIONS))
    await db.execute(text(OPT_OUTS))

    # Indexes and unique constraints first: the foreign keys' checks then use them.
    for _, restore, _ in sorted(set_aside, key=lambda row: row.foreign_key):
        await db.execute(text(restore))
    for table in BULK_TABLES:
        await db.execute(text(TRIGGERS.format(table=table, action="ENABLE")))
    await _execute_all(db, COUNTERS)
    # Fresh statistics so the first queries after a seed get sensible plans.
    await db.execute(text("ANALYZE"))

    counts = (
        await db.execute(
            text(
                "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM categories),"
                " (SELECT count(*) FROM category_contacts), (SELECT count(*) FROM campaigns),"
                " (SELECT count(*) FROM messages), (SELECT count(*) FROM interactions)"
            )
        )
    ).one()
    return SeedReport(
        contacts=counts[0],
        categories=counts[1],
        category_contacts=counts[2],
        campaigns=counts[3],
        messages=counts[4],
        interactions=counts[5],
        seconds=time.perf_counter() - started,
    )
