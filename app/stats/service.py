"""Verifying the statistics counters against count(*), repairing them, folding their rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.stats.repository import Drift, StatsRepository


@dataclass(frozen=True)
class Verification:
    drift: list[Drift]  # what was found, before any repair
    remaining: list[Drift]  # what a re-check still found after repairing (empty if none)
    repaired: bool
    folded: int = 0  # counter rows merged away or dropped before the check (with repair)


async def find_drift(engine: AsyncEngine) -> list[Drift]:
    """One REPEATABLE READ snapshot, so concurrent writers cannot show up as drift."""
    sessions = async_sessionmaker(
        engine.execution_options(isolation_level="REPEATABLE READ"), expire_on_commit=False
    )
    async with sessions() as session, session.begin():
        return await StatsRepository(session).drift()


async def fold(engine: AsyncEngine) -> int:
    """Merge every campaign's (and each table's) counter rows into one; how many went.

    Safe beside writers: rows an open transaction holds are skipped (folded next time),
    and writers never wait for the fold.
    """
    async with async_sessionmaker(engine)() as session, session.begin():
        return await StatsRepository(session).fold()


async def verify(engine: AsyncEngine, *, repair: bool = False) -> Verification:
    """Compare every counter with count(*); with `repair`, fold, correct and check again."""
    folded = await fold(engine) if repair else 0
    drift = await find_drift(engine)
    if not (repair and drift):
        return Verification(drift, drift, repaired=False, folded=folded)
    async with async_sessionmaker(engine)() as session, session.begin():
        await StatsRepository(session).repair(drift)
    return Verification(drift, await find_drift(engine), repaired=True, folded=folded)
