"""Folding the statistics counters' shard rows: sums kept, never waiting, safe beside writers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.stats.repository import CAMPAIGN_FIELDS, TOTAL_FIELDS, StatsRepository
from app.stats.service import find_drift, fold
from tests.fake_whatsapp import Worker, seed_campaign, worker_env
from tests.test_cli import herald

pytestmark = pytest.mark.asyncio

# A statement that waits for a lock fails instead of hanging: folding and counting never
# wait for each other, so none of these tests should ever come near it.
NO_WAITING = "SET lock_timeout = '10s'"
UNLESS_BLOCKED = 60  # seconds: a fold that waited for a writer would never return
TOGGLE = (
    "UPDATE messages SET status = CASE status WHEN 'sent' THEN 'delivered' ELSE 'sent' END"
    " WHERE id = :id"
)


@pytest_asyncio.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def sent_campaign(session: AsyncSession, contacts: int) -> tuple[int, list[int]]:
    """A campaign whose `contacts` messages are all `sent`, and their ids."""
    campaign_id = await seed_campaign(session, contacts)
    ids = (
        await session.execute(
            text(
                "INSERT INTO messages (campaign_id, contact_id, status)"
                " SELECT :c, id, 'sent' FROM contacts ORDER BY id RETURNING id"
            ),
            {"c": campaign_id},
        )
    ).scalars()
    result = list(ids)
    await session.commit()
    return campaign_id, result


async def rows(session: AsyncSession, table: str, campaign_id: int | None = None) -> int:
    where = "" if campaign_id is None else f" WHERE campaign_id = {campaign_id}"
    count = (await session.execute(text(f"SELECT count(*) FROM {table}{where}"))).scalar_one()
    await session.commit()
    return int(count)


async def campaign_sums(session: AsyncSession, campaign_id: int) -> tuple[int, ...]:
    row = (
        await session.execute(
            text(
                f"SELECT {', '.join(f'sum({f})' for f in CAMPAIGN_FIELDS)}"
                " FROM campaign_counters WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        )
    ).one()
    await session.commit()
    return tuple(int(v) for v in row)


async def open_writer(engine: AsyncEngine, message_id: int) -> AsyncConnection:
    """A transaction that changed one message and still holds its counter rows."""
    connection = await engine.connect()
    await connection.execute(text(NO_WAITING))
    await connection.execute(text(TOGGLE), {"id": message_id})
    return connection


async def test_fold_merges_each_campaigns_rows_into_one_and_keeps_the_sums(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    # given 12 writers that were open at once: each had to add a counter row of its own
    campaign_id, ids = await sent_campaign(session, 12)
    writers = [await open_writer(engine, message_id) for message_id in ids]
    for writer in writers:
        await writer.commit()
        await writer.close()
    before = await campaign_sums(session, campaign_id)
    spread = await rows(session, "campaign_counters", campaign_id)

    # when
    folded = await fold(engine)

    # then
    assert spread >= 12
    assert folded >= spread - 1
    assert await rows(session, "campaign_counters", campaign_id) == 1
    assert await rows(session, "total_counters") == 1
    assert await rows(session, "contact_counters") == 1
    assert await campaign_sums(session, campaign_id) == before
    assert before == (0, 0, 0, 12, 0, 0, 0)
    assert await find_drift(engine) == []


async def test_fold_skips_rows_a_writer_holds_and_never_waits_for_it(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    # given rows from three earlier writers, and a fourth writer still open on one of them
    campaign_id, ids = await sent_campaign(session, 4)
    earlier = [await open_writer(engine, message_id) for message_id in ids[:3]]
    for writer in earlier:
        await writer.commit()
        await writer.close()
    holding = await open_writer(engine, ids[3])

    # when the fold runs while that writer is open, and again after it committed
    during = await asyncio.wait_for(fold(engine), UNLESS_BLOCKED)
    rows_during = await rows(session, "campaign_counters", campaign_id)
    await holding.commit()
    await holding.close()
    after = await fold(engine)

    # then the first fold merged what it could, the second the rest
    assert during >= 1
    assert rows_during == 2  # the held row, and the two others folded into one
    assert after >= 1
    assert await rows(session, "campaign_counters", campaign_id) == 1
    assert await campaign_sums(session, campaign_id) == (0, 0, 0, 4, 0, 0, 0)
    assert await find_drift(engine) == []


async def test_writers_never_wait_for_an_open_fold(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    # given a fold that has locked every counter row and not committed yet
    campaign_id, ids = await sent_campaign(session, 4)
    for message_id in ids[:2]:
        writer = await open_writer(engine, message_id)
        await writer.commit()
        await writer.close()
    async with AsyncSession(engine) as fold_session:
        await fold_session.execute(text(NO_WAITING))
        await StatsRepository(fold_session).fold()

        # when writers change the same campaign, its totals and contacts meanwhile
        async with engine.begin() as connection:
            await connection.execute(text(NO_WAITING))
            await connection.execute(text(TOGGLE), {"id": ids[2]})
            await connection.execute(text(TOGGLE), {"id": ids[3]})
            await connection.execute(text("UPDATE contacts SET opted_out_at = now() WHERE id = 1"))
        await fold_session.commit()

    # then they went to rows of their own, and everything still adds up
    assert await campaign_sums(session, campaign_id) == (0, 0, 0, 4, 0, 0, 0)
    assert await find_drift(engine) == []
    await fold(engine)
    assert await rows(session, "campaign_counters", campaign_id) == 1


async def test_folding_beside_busy_writers_keeps_every_read_and_the_counters_exact(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    # given a campaign of 60 sent messages
    campaign_id, ids = await sent_campaign(session, 60)
    rng = random.Random(11)
    stop = asyncio.Event()

    async def writer() -> int:
        """Moves messages between sent and delivered, holding its rows a little while."""
        writes = 0
        async with engine.connect() as connection:
            await connection.execute(text(NO_WAITING))
            await connection.commit()
            while not stop.is_set():
                for message_id in sorted(rng.sample(ids, 3)):  # no deadlock on messages
                    await connection.execute(text(TOGGLE), {"id": message_id})
                await asyncio.sleep(0.002)
                await connection.commit()
                writes += 1
        return writes

    async def folder() -> int:
        folded = 0
        while not stop.is_set():
            folded += await fold(engine)
        return folded

    async def reader() -> list[int]:
        """A campaign's total never moves when only statuses do, folded or not."""
        seen: list[int] = []
        async with engine.connect() as connection:
            while not stop.is_set():
                total = (
                    await connection.execute(
                        text(
                            "SELECT sum(sent + delivered), (SELECT sum(sent + delivered)"
                            " FROM total_counters) FROM campaign_counters WHERE campaign_id = :c"
                        ),
                        {"c": campaign_id},
                    )
                ).one()
                await connection.commit()
                seen.extend(int(v) for v in total)
                await asyncio.sleep(0)
        return seen

    # when 4 writers, 2 folds and a reader run together
    tasks = [asyncio.create_task(writer()) for _ in range(4)]
    folds = [asyncio.create_task(folder()) for _ in range(2)]
    reading = asyncio.create_task(reader())
    await asyncio.sleep(3)
    stop.set()
    writes = await asyncio.gather(*tasks)
    folded = await asyncio.gather(*folds)
    seen = await reading

    # then
    assert min(writes) > 0
    assert sum(folded) > 0  # rows were merged while the writers ran
    assert seen
    assert set(seen) == {60}
    assert await find_drift(engine) == []
    await fold(engine)
    assert await rows(session, "campaign_counters", campaign_id) == 1
    assert await rows(session, "total_counters") == 1
    assert await find_drift(engine) == []


async def test_fold_drops_an_orphan_row_and_takes_it_out_of_the_totals(
    session: AsyncSession, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    # given what a writer racing an SQL deletion of its campaign leaves: a counter row of
    # a campaign that no longer exists, its deltas also in the totals
    campaign_id, _ = await sent_campaign(session, 2)
    gone = campaign_id + 1000
    zeros = ", ".join("0" for _ in TOTAL_FIELDS[7:])
    await session.execute(text(f"SELECT herald_add_campaign_counts({gone}, 0, 0, 3, 0, 0, 0, 1)"))
    await session.execute(text(f"SELECT herald_add_total_counts(0, 0, 3, 0, 0, 0, 1, {zeros})"))
    await session.commit()
    reported = await find_drift(engine)

    # when
    folded = await fold(engine)

    # then
    assert {(d.scope, d.field) for d in reported} == {
        (gone, "sent"),
        (gone, "interactions"),
        ("totals", "sent"),
        ("totals", "interactions"),
    }
    assert folded >= 1
    assert await rows(session, "campaign_counters", gone) == 0
    assert await find_drift(engine) == []
    check = await herald("stats", "verify", cwd=tmp_path, HERALD_DATABASE_URL=database_url)
    assert (check.code, check.stdout) == (0, "herald: statistics counters are exact\n")


async def test_repair_of_an_orphan_row_leaves_the_totals_exact(
    session: AsyncSession, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    # given an orphan row as above, and another one added without touching the totals
    campaign_id, _ = await sent_campaign(session, 2)
    zeros = ", ".join("0" for _ in TOTAL_FIELDS[7:])
    await session.execute(
        text(f"SELECT herald_add_campaign_counts({campaign_id + 1}, 0, 0, 3, 0, 0, 0, 0)")
    )
    await session.execute(text(f"SELECT herald_add_total_counts(0, 0, 3, 0, 0, 0, 0, {zeros})"))
    await session.execute(
        text(f"SELECT herald_add_campaign_counts({campaign_id + 2}, 0, 0, 0, 5, 0, 0, 0)")
    )
    await session.commit()

    # when
    repaired = await herald(
        "stats", "verify", "--repair", cwd=tmp_path, HERALD_DATABASE_URL=database_url
    )

    # then
    assert repaired.code == 0, repaired.stdout + repaired.stderr
    assert repaired.stdout.splitlines()[0].startswith("herald: folded ")
    assert await find_drift(engine) == []


async def test_worker_processes_fold_the_counter_rows_by_themselves(
    session: AsyncSession, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    # given a campaign whose counters were spread over 6 rows by 6 writers open at once
    campaign_id, ids = await sent_campaign(session, 6)
    writers = [await open_writer(engine, message_id) for message_id in ids]
    for writer in writers:
        await writer.commit()
        await writer.close()
    spread = await rows(session, "campaign_counters", campaign_id)
    log = tmp_path / "worker.log"

    # when a worker process runs, with nothing to send
    worker = Worker(
        worker_env(settings, "http://127.0.0.1:9", dispatch_recovery_interval_s=1), log, 1
    )
    try:

        async def folded() -> bool:
            return await rows(session, "campaign_counters", campaign_id) == 1

        await worker.wait_until(folded, "the counter rows folded into one")
    finally:
        worker.stop()

    # then
    assert spread >= 6
    assert await campaign_sums(session, campaign_id) == (0, 0, 0, 6, 0, 0, 0)
    assert await find_drift(engine) == []
