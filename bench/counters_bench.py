"""`python -m bench.counters_bench`: concurrent writers on one campaign, by counter design.

    python -m bench.counters_bench [--writers 8] [--seconds 5] [--hold-ms 1]

Each writer loops over short transactions shaped like a status webhook: flip one random
message of the same campaign between `sent` and `delivered`, keep the transaction open
`--hold-ms` (the handler's other statements and the COMMIT round trip), commit. Three
designs, interleaved over two rounds in one database:

- no counters: the counting triggers off (the floor);
- one row per campaign: every statement adds to the same counter row, so writers queue
  on its lock for as long as the holder's transaction lasts;
- shipped: the row SKIP LOCKED finds free (a new one when all are taken).

Reports transactions per second, how many counter rows the campaign ended with, and
whether the counters still equal count(*).

A second table isolates what the counters cost dispatch in PostgreSQL: the worker's own
statements (claim a batch of 200, commit; record them sent, commit) over all messages,
without and with the counting triggers, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import load_settings
from app.messages.repository import MessageRepository
from bench.common import fresh_database, table
from bench.dispatch_bench import COUNTER_TRIGGERS

DATABASE = "herald_counters_bench"
MESSAGES = 20_000

# The shipped function, from the migration, restored between designs.
_SHIPPED = "SELECT pg_get_functiondef('herald_add_campaign_counts'::regproc)"
_ONE_ROW = """
CREATE OR REPLACE FUNCTION herald_add_campaign_counts(
    key bigint, d_pending bigint, d_sending bigint, d_sent bigint, d_delivered bigint,
    d_read bigint, d_failed bigint, d_interactions bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO campaign_counters AS c
        (campaign_id, shard, pending, sending, sent, delivered, read, failed, interactions)
    VALUES (key, 0, d_pending, d_sending, d_sent, d_delivered, d_read, d_failed, d_interactions)
    ON CONFLICT (campaign_id, shard) DO UPDATE SET
        pending = c.pending + d_pending, sending = c.sending + d_sending,
        sent = c.sent + d_sent, delivered = c.delivered + d_delivered,
        read = c.read + d_read, failed = c.failed + d_failed,
        interactions = c.interactions + d_interactions
$$
"""
_FLIP = """
UPDATE messages SET status = CASE status WHEN 'sent' THEN 'delivered' ELSE 'sent' END
WHERE id = $1
"""


async def _prepare() -> str:
    url = await fresh_database(DATABASE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO contacts (phone) SELECT '+3363' || lpad(i::text, 7, '0')"
            " FROM generate_series(1, $1) AS i",
            MESSAGES,
        )
        await conn.execute(
            "INSERT INTO campaigns (name, template_name, template_language, template_body,"
            " status) VALUES ('bench', 't', 'en', 'b', 'completed')"
        )
        await conn.execute(
            "INSERT INTO messages (campaign_id, contact_id, status) SELECT 1, id, 'sent'"
            " FROM contacts"
        )
    finally:
        await conn.close()
    return url


async def _set_design(url: str, design: str, shipped: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        action = "DISABLE" if design == "no counters" else "ENABLE"
        for trigger in COUNTER_TRIGGERS:
            await conn.execute(f"ALTER TABLE {trigger.split('_', 1)[0]} {action} TRIGGER {trigger}")
        await conn.execute(_ONE_ROW if design == "one row per campaign" else shipped)
        # Start each design from one exact row, as `stats verify --repair` would leave it.
        await conn.execute("DELETE FROM campaign_counters")
        await conn.execute(
            "INSERT INTO campaign_counters (campaign_id, shard, sent, delivered)"
            " SELECT 1, 0, count(*) FILTER (WHERE status = 'sent'),"
            " count(*) FILTER (WHERE status = 'delivered') FROM messages"
        )
    finally:
        await conn.close()


async def _writer(url: str, deadline: float, hold_s: float, seed: int) -> int:
    rng = random.Random(seed)
    conn = await asyncpg.connect(url)
    done = 0
    try:
        while time.monotonic() < deadline:
            async with conn.transaction():
                await conn.execute(_FLIP, rng.randint(1, MESSAGES))
                if hold_s:
                    await asyncio.sleep(hold_s)
            done += 1
    finally:
        await conn.close()
    return done


async def _run(url: str, writers: int, seconds: float, hold_s: float) -> float:
    deadline = time.monotonic() + seconds
    counts = await asyncio.gather(
        *(_writer(url, deadline, hold_s, seed) for seed in range(writers))
    )
    return sum(counts) / seconds


async def _state(url: str) -> tuple[int, bool]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM campaign_counters")
        exact = await conn.fetchval(
            "SELECT (SELECT sum(sent) FROM campaign_counters) ="
            " (SELECT count(*) FROM messages WHERE status = 'sent')"
        )
    finally:
        await conn.close()
    return int(rows), bool(exact)


async def _dispatch_statements(url: str, batch: int) -> float:
    """Messages per second through claim + record_sent, the DB side of one send lane."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE messages SET status = 'pending', provider_message_id = NULL")
    finally:
        await conn.close()
    engine = create_async_engine(
        load_settings(database_url=url).async_database_url, poolclass=NullPool
    )
    sessions = async_sessionmaker(engine)
    done = 0
    began = time.perf_counter()
    try:
        async with sessions() as session:
            while True:
                repository = MessageRepository(session)
                claimed = await repository.claim(1, batch, datetime.now(UTC))
                await session.commit()
                if not claimed:
                    break
                await repository.record_sent(
                    [m.id for m in claimed], [f"wamid.{m.id}.{done}" for m in claimed]
                )
                await session.commit()
                done += len(claimed)
    finally:
        await engine.dispose()
    return done / (time.perf_counter() - began)


async def dispatch_table(url: str, shipped: str, rounds: int) -> str:
    rates: dict[str, list[float]] = {"no counters": [], "shipped (SKIP LOCKED)": []}
    for _ in range(rounds):
        for design in rates:
            await _set_design(url, design, shipped)
            rates[design].append(await _dispatch_statements(url, 200))
    floor = statistics.median(rates["no counters"])
    return table(
        ("claim 200 + record sent, one lane", "messages/s", "vs no counters", "runs"),
        [
            (d, f"{statistics.median(r):,.0f}", f"{statistics.median(r) / floor:.2f}", len(r))
            for d, r in rates.items()
        ],
    )


async def main_async(writers: int, seconds: float, hold_ms: float, rounds: int) -> str:
    url = await _prepare()
    conn = await asyncpg.connect(url)
    try:
        shipped = await conn.fetchval(_SHIPPED)
    finally:
        await conn.close()
    designs = ("no counters", "one row per campaign", "shipped (SKIP LOCKED)")
    rates: dict[str, list[float]] = {d: [] for d in designs}
    states: dict[str, tuple[int, bool]] = {}
    for _ in range(rounds):
        for design in designs:
            await _set_design(url, design, shipped)
            rates[design].append(await _run(url, writers, seconds, hold_ms / 1000))
            states[design] = await _state(url)
    floor = statistics.median(rates[designs[0]])
    rows = []
    for design in designs:
        rate = statistics.median(rates[design])
        counter_rows, exact = states[design]
        rows.append(
            (
                design,
                f"{rate:,.0f}",
                f"{rate / floor:.2f}",
                "-" if design == designs[0] else counter_rows,
                "-" if design == designs[0] else ("yes" if exact else "NO"),
            )
        )
    dispatch = await dispatch_table(url, shipped, rounds + 1)
    await _set_design(url, designs[-1], shipped)
    return (
        dispatch
        + "\n\n"
        + table(
            (
                f"{writers} writers, one campaign, {hold_ms:g} ms held",
                "transactions/s",
                "vs no counters",
                "counter rows",
                "counters = count(*)",
            ),
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--hold-ms", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(asyncio.run(main_async(args.writers, args.seconds, args.hold_ms, args.rounds)))


if __name__ == "__main__":
    main()
