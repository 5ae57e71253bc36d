"""The `herald` command run as a real subprocess: configuration errors, migrate, seed."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.models import CampaignStatus, InteractionKind, MessageStatus
from app.stats.service import find_drift
from tests.fake_whatsapp import ACCESS_TOKEN, BUSINESS_ACCOUNT_ID, FakeWhatsApp
from tests.test_templates_sync import listed

pytestmark = pytest.mark.asyncio

HERALD = str(Path(sys.executable).with_name("herald"))


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def herald(*args: str, cwd: Path, **env: str) -> Run:
    """Run `herald` with only the HERALD_* variables given here."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    process = await asyncio.create_subprocess_exec(
        HERALD,
        *args,
        cwd=cwd,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HERALD_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
            "herald: cannot reach PostgreSQL at 127.0.0.1:1: connection refused",
        ),
        (
            {"HERALD_DATABASE_URL": "postgresql://postgres@127.0.0.1:notaport/x"},
            "herald: configuration error: HERALD_DATABASE_URL: malformed URL",
        ),
        (
            {"HERALD_DATABASE_URL": "mysql://root@127.0.0.1/x"},
            "herald: configuration error: HERALD_DATABASE_URL:",
        ),
        (
            {"HERALD_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "HERALD_PORT": "abc"},
            "herald: configuration error: HERALD_PORT:",
        ),
        ({}, "herald: configuration error: HERALD_DATABASE_URL: not set"),
    ],
    ids=["unreachable", "malformed", "not-postgres", "invalid-port", "unset"],
)
async def test_bad_configuration_is_one_line(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    # when
    run = await herald("migrate", cwd=tmp_path, **env)

    # then
    assert run.code != 0
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(expected), run.stderr
    assert "Traceback" not in run.stderr


async def test_worker_reports_unreachable_redis(database_url: str, tmp_path: Path) -> None:
    # when
    run = await herald(
        "worker",
        cwd=tmp_path,
        HERALD_DATABASE_URL=database_url,
        HERALD_REDIS_URL="redis://127.0.0.1:1/0",
    )

    # then
    assert run.code != 0
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("herald: cannot reach Redis at redis://127.0.0.1:1/0")


async def test_migrate_round_trip(fresh_database: str, tmp_path: Path) -> None:
    # when
    up = await herald("migrate", cwd=tmp_path, HERALD_DATABASE_URL=fresh_database)
    down = await herald(
        "migrate", "--downgrade", "base", cwd=tmp_path, HERALD_DATABASE_URL=fresh_database
    )
    assert (up.code, down.code) == (0, 0), (up, down)
    assert up.stdout == "herald: database upgraded to head\n"
    assert down.stdout == "herald: database downgraded to base\n"


async def test_migrate_unknown_revision_is_one_line(database_url: str, tmp_path: Path) -> None:
    run = await herald("migrate", "nosuchrev", cwd=tmp_path, HERALD_DATABASE_URL=database_url)

    assert run.code != 0
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "nosuchrev" in run.stderr


SEED_ARGS = ("--contacts", "600", "--campaigns", "12", "--messages-per-campaign", "400")


async def _scalar(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).scalar_one()


async def _values(session: AsyncSession, sql: str) -> set[str]:
    return {row[0] for row in await session.execute(text(sql))}


async def test_seed_generates_every_status(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    # when
    run = await herald("seed", *SEED_ARGS, cwd=tmp_path, HERALD_DATABASE_URL=database_url)

    # then
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("herald: seeded 600 contacts")
    assert await _scalar(session, "SELECT count(*) FROM contacts") == 600
    assert await _scalar(session, "SELECT count(*) FROM campaigns") == 12
    # Drafts and scheduled campaigns have not sent anything yet: 12 - 2 started ones.
    started = await _scalar(
        session, "SELECT count(*) FROM campaigns WHERE status NOT IN ('draft', 'scheduled')"
    )
    assert started == 10
    assert await _scalar(session, "SELECT count(*) FROM messages") == 10 * 400
    assert await _values(session, "SELECT status FROM campaigns") == set(CampaignStatus)
    assert await _values(session, "SELECT status FROM messages") == set(MessageStatus)
    assert await _values(session, "SELECT kind FROM interactions") == set(InteractionKind)
    assert await _scalar(session, "SELECT count(*) FROM category_contacts") > 600


async def test_seed_data_is_consistent(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    # given
    run = await herald("seed", *SEED_ARGS, cwd=tmp_path, HERALD_DATABASE_URL=database_url)
    assert run.code == 0, run.stderr

    # then: phones are valid E.164 numbers from several countries
    phones = await _values(session, "SELECT phone FROM contacts")
    parsed = [phonenumbers.parse(phone) for phone in phones]
    assert all(phonenumbers.is_valid_number(number) for number in parsed)
    assert {number.country_code for number in parsed} == {1, 33, 44, 49, 91, 234}
    # timestamps only move forward and never lie in the future
    inconsistent = await _scalar(
        session,
        """
        SELECT count(*) FROM messages
        WHERE delivered_at < sent_at OR read_at < delivered_at
           OR greatest(sent_at, delivered_at, read_at, failed_at) > now()
           OR (status IN ('pending', 'sending') AND (sent_at IS NOT NULL OR failed_at IS NOT NULL))
           OR (status = 'read' AND read_at IS NULL)
           OR (status = 'failed' AND (failed_at IS NULL OR error IS NULL))
           OR (status <> 'failed' AND error IS NOT NULL)
        """,
    )
    assert inconsistent == 0
    unfinished_in_completed = await _scalar(
        session,
        """
        SELECT count(*) FROM messages m JOIN campaigns c ON c.id = m.campaign_id
        WHERE c.status = 'completed' AND m.status IN ('pending', 'sending')
        """,
    )
    assert unfinished_in_completed == 0
    # campaigns were created in id order (lists are newest first by id) and started later
    out_of_order = await _scalar(
        session,
        """
        SELECT count(*) FROM (
          SELECT created_at, started_at, completed_at,
                 lag(created_at) OVER (ORDER BY id) AS previous
          FROM campaigns
        ) AS c
        WHERE created_at <= previous OR started_at < created_at
           OR greatest(created_at, started_at, completed_at) > now()
        """,
    )
    assert out_of_order == 0
    opted_out = await _scalar(
        session, "SELECT count(*) FROM contacts WHERE opted_out_at IS NOT NULL"
    )
    opt_out_contacts = await _scalar(
        session,
        """
        SELECT count(DISTINCT m.contact_id) FROM interactions i
        JOIN messages m ON m.id = i.message_id WHERE i.kind = 'opt_out'
        """,
    )
    assert opted_out == opt_out_contacts


# What the seed sets aside while it loads: it must all come back exactly as migrated.
CATALOG = """
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid::regclass::text IN ('contacts', 'category_contacts', 'messages', 'interactions')
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text FROM pg_trigger
WHERE NOT tgisinternal
"""


async def test_seed_restores_indexes_constraints_triggers_and_counts_what_it_loaded(
    database_url: str, session: AsyncSession, settings: Settings, tmp_path: Path
) -> None:
    # given
    before = await _values(session, CATALOG)
    await session.commit()

    # when
    run = await herald("seed", *SEED_ARGS, cwd=tmp_path, HERALD_DATABASE_URL=database_url)

    # then
    assert run.code == 0, run.stderr
    assert await _values(session, CATALOG) == before
    assert len([entry for entry in before if entry.startswith("trigger ")]) > 10
    await session.commit()
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    try:
        assert await find_drift(engine) == []
    finally:
        await engine.dispose()
    # and the constraints hold again
    with pytest.raises(IntegrityError, match="uq_messages_campaign_id_contact_id"):
        await session.execute(
            text(
                "INSERT INTO messages (campaign_id, contact_id)"
                " SELECT campaign_id, contact_id FROM messages LIMIT 1"
            )
        )


async def test_seed_refuses_existing_data_without_reset(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    # given
    small = ("--contacts", "50", "--campaigns", "7", "--messages-per-campaign", "10")
    first = await herald("seed", *small, cwd=tmp_path, HERALD_DATABASE_URL=database_url)
    assert first.code == 0, first.stderr

    # when
    again = await herald("seed", *small, cwd=tmp_path, HERALD_DATABASE_URL=database_url)
    reset = await herald("seed", *small, "--reset", cwd=tmp_path, HERALD_DATABASE_URL=database_url)

    # then
    assert again.code != 0
    assert (
        again.stderr
        == "herald: seed: the database already has 50 contacts; pass --reset to replace them\n"
    )
    assert reset.code == 0, reset.stderr
    assert await _scalar(session, "SELECT count(*) FROM contacts") == 50


async def test_seed_rejects_more_messages_than_contacts(
    database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    # when
    run = await herald(
        "seed",
        *("--contacts", "10", "--messages-per-campaign", "11"),
        cwd=tmp_path,
        HERALD_DATABASE_URL=database_url,
    )

    # then
    assert run.code == 2
    assert "--messages-per-campaign cannot exceed --contacts" in run.stderr
    assert await _scalar(session, "SELECT count(*) FROM contacts") == 0


async def test_templates_sync_lists_the_account_and_says_what_changed(
    database_url: str,
    settings: Settings,
    fake: FakeWhatsApp,
    fake_server: tuple[FakeWhatsApp, str],
    tmp_path: Path,
) -> None:
    # given three templates in the account, listed two per page
    fake.message_templates += [listed("a"), listed("b"), listed("c", status="PAUSED")]
    env = {
        "HERALD_DATABASE_URL": database_url,
        "HERALD_REDIS_URL": str(settings.redis_url),
        "HERALD_WHATSAPP_PROVIDER": "cloud_api",
        "HERALD_WHATSAPP_API_BASE_URL": fake_server[1],
        "HERALD_WHATSAPP_BUSINESS_ACCOUNT_ID": BUSINESS_ACCOUNT_ID,
        "HERALD_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
    }

    # when synced twice, then with a token the Cloud API refuses
    first = await herald("templates", "sync", cwd=tmp_path, **env)
    again = await herald("templates", "sync", cwd=tmp_path, **env)
    refused = await herald(
        "templates", "sync", cwd=tmp_path, **{**env, "HERALD_WHATSAPP_ACCESS_TOKEN": "expired"}
    )

    # then
    synced = "herald: templates synced: 3 listed: {} added, 0 changed, {} unchanged; 0 no longer "
    assert first == Run(0, synced.format(3, 0) + "listed (marked DELETED)\n", "")
    assert again == Run(0, synced.format(0, 3) + "listed (marked DELETED)\n", "")
    assert refused == Run(
        1,
        "",
        "herald: templates sync: the Cloud API answered HTTP 401: "
        "(#190) Access token has expired\n",
    )
    assert len(fake.listings) == 2 + 2 + 1  # two pages each, the refused one stops at once
