"""Upkeep of the statistics counters, run by every worker's recovery rounds."""

from __future__ import annotations

from app.deps import Deps
from app.stats.repository import StatsRepository


async def fold_counters(deps: Deps) -> int:
    """Merge the statistics counters' shard rows back into one per campaign; how many went.

    Each concurrent writer may add a row (app/stats), so without this a campaign keeps
    as many rows as it ever had writers at once. Never waits for a writer, nor a writer
    for it, so every worker can run it every recovery round.
    """
    async with deps.sessionmaker() as session:
        folded = await StatsRepository(session).fold()
        await session.commit()
    return folded
