"""Verifying the statistics counters against count(*), and repairing them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.stats.repository import Drift, StatsRepository


@dataclass(frozen=True)
class Verification:
    drift: list[Drift]  # what was found, before any repair
    remaining: list[Drift]  # what a re-check still found after repairing (empty if none)
    repaired: bool


async def find_drift(engine: AsyncEngine) -> list[Drift]:
    """One REPEATABLE READ snapshot, so concurrent writers cannot show up as drift."""
    sessions = async_sessionmaker(
        engine.execution_options(isolation_level="REPEATABLE READ"), expire_on_commit=False
    )
    async with sessions() as session, session.begin():
        return await StatsRepository(session).drift()


async def verify(engine: AsyncEngine, *, repair: bool = False) -> Verification:
    """Compare every counter with count(*); with `repair`, correct them and check again."""
    drift = await find_drift(engine)
    if not (repair and drift):
        return Verification(drift, drift, repaired=False)
    async with async_sessionmaker(engine)() as session, session.begin():
        await StatsRepository(session).repair(drift)
    return Verification(drift, await find_drift(engine), repaired=True)
