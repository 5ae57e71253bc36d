"""Alembic migrations: a full round trip on a fresh database, and no drift from the models."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.config import load_settings
from app.db import migrate
from app.models import Base

MODEL_TABLES = set(Base.metadata.tables)


def _async_url(url: str) -> str:
    return load_settings(database_url=url).async_database_url


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        tables = {row[0] for row in rows}
    await engine.dispose()
    return tables


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def _differences(url: str) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_diff)
    await engine.dispose()
    return differences


def test_upgrade_downgrade_upgrade_round_trip(fresh_database: str) -> None:
    # given
    url = _async_url(fresh_database)

    # when / then
    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == MODEL_TABLES | {"alembic_version"}

    migrate.downgrade(url, "base")
    assert asyncio.run(_tables(url)) == {"alembic_version"}

    migrate.upgrade(url)
    assert asyncio.run(_tables(url)) == MODEL_TABLES | {"alembic_version"}


def test_models_and_migrations_do_not_drift(fresh_database: str) -> None:
    # given
    url = _async_url(fresh_database)
    migrate.upgrade(url)

    # when
    differences = asyncio.run(_differences(url))

    # then
    assert differences == []


def test_drift_check_sees_a_missing_index(fresh_database: str) -> None:
    """The comparison above can fail: dropping one index is reported."""
    # given
    url = _async_url(fresh_database)
    migrate.upgrade(url)

    async def drop_index() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.begin() as connection:
            await connection.execute(text("DROP INDEX ix_messages_contact_id"))
        await engine.dispose()

    asyncio.run(drop_index())

    # when
    differences = asyncio.run(_differences(url))

    # then
    assert len(differences) == 1
    assert differences[0][0] == "add_index"
