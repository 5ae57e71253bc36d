"""Programmatic Alembic: `herald migrate`, `herald dev` and the tests share this entry point."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(async_database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = async_database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(async_database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(async_database_url), revision)


def downgrade(async_database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(async_database_url), revision)
