"""All SQL about API keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Row,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.reads import in_ids, rows
from app.models import ApiKey, ApiKeyRole

api_keys = cast(Table, ApiKey.__table__)

# One round trip: find the live key and, at most once a minute, stamp last_used_at.
# SKIP LOCKED: concurrent requests with the same key never queue behind each other's
# stamp (the row lock lives until the request commits); one of them stamps, the rest skip.
_AUTHENTICATE = text(
    """
    WITH found AS (
        SELECT id, name, role FROM api_keys WHERE key_hash = :key_hash AND revoked_at IS NULL
    ), stamped AS (
        UPDATE api_keys SET last_used_at = now()
        WHERE id IN (
            SELECT k.id FROM api_keys k JOIN found ON found.id = k.id
            WHERE k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => :touch_s)
            FOR UPDATE OF k SKIP LOCKED
        )
        RETURNING id
    )
    SELECT found.id, found.name, found.role FROM found
    """
)

# Reads, built once (app/db/reads.py).
_BY_IDS = select(api_keys).where(in_ids(api_keys.c.id))
_NEWEST_FIRST = select(api_keys).order_by(api_keys.c.id.desc())
_ALL = {  # by whether revoked keys are listed
    True: _NEWEST_FIRST,
    False: _NEWEST_FIRST.where(api_keys.c.revoked_at.is_(None)),
}


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, name: str, role: ApiKeyRole, key_hash: str, key_prefix: str) -> Row:
        stmt = (
            insert(api_keys)
            .values(name=name, role=role, key_hash=key_hash, key_prefix=key_prefix)
            .returning(api_keys)
        )
        return (await self.session.execute(stmt)).one()

    async def authenticate(self, key_hash: str, touch_after_s: float) -> Row | None:
        """The live (unrevoked) key with this hash, stamping its last use."""
        result = await self.session.execute(
            _AUTHENTICATE, {"key_hash": key_hash, "touch_s": touch_after_s}
        )
        return result.one_or_none()

    async def revoke(self, key_id: int) -> Row | None:
        """Revoke once: a second call keeps the first revocation time."""
        stmt = (
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
            .returning(api_keys)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_IDS, {"ids": list(ids)})).named()

    async def live_ids(self, key_ids: Sequence[int]) -> Sequence[int]:
        """Which of these keys are still unrevoked."""
        stmt = select(api_keys.c.id).where(
            api_keys.c.id.in_(key_ids), api_keys.c.revoked_at.is_(None)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def by_hash(self, key_hash: str) -> Row | None:
        stmt = select(api_keys).where(api_keys.c.key_hash == key_hash)
        return (await self.session.execute(stmt)).one_or_none()

    async def all(self, include_revoked: bool) -> Sequence[Any]:
        return (await rows(self.session, _ALL[include_revoked])).named()
