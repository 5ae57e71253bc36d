"""API key rules: random keys shown once, SHA-256 at rest, roles ordered viewer < editor < admin."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.repository import ApiKeyRepository
from app.errors import NotFound
from app.inputs import check_text
from app.models import ApiKeyRole

KEY_PREFIX = "hk_"
NAME_MAX = 200
# last_used_at is a hint for operators, not an audit log: one write a minute per key at most.
TOUCH_INTERVAL_S = 60.0
_RANK = {ApiKeyRole.VIEWER: 1, ApiKeyRole.EDITOR: 2, ApiKeyRole.ADMIN: 3}


def hash_key(key: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is enough (no salt or slow hash needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


# What `generate_key` makes: anything else is no key, refused without a lookup.
_KEY_FORMAT = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43}}")


def well_formed(token: str) -> bool:
    return _KEY_FORMAT.fullmatch(token) is not None


def role_allows(role: ApiKeyRole, required: ApiKeyRole) -> bool:
    """admin ⊃ editor ⊃ viewer."""
    return _RANK[role] >= _RANK[required]


def bearer_token(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        return None
    return token


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key's id, name and role (never the key itself)."""

    key_id: int
    name: str
    role: ApiKeyRole

    def can(self, required: ApiKeyRole) -> bool:
        return role_allows(self.role, required)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    row: Row
    key: str  # the plaintext: returned to the creator once, never stored


class ApiKeyService:
    def __init__(self, session: AsyncSession) -> None:
        self.keys = ApiKeyRepository(session)

    async def create(self, name: str, role: ApiKeyRole) -> CreatedKey:
        name = check_text("name", name, NAME_MAX)
        key = generate_key()
        row = await self.keys.insert(name, role, hash_key(key), key[: len(KEY_PREFIX) + 6])
        return CreatedKey(row, key)

    async def revoke(self, key_id: int) -> Row:
        row = await self.keys.revoke(key_id)
        if row is None:
            raise NotFound("ApiKey", key_id)
        return row

    async def authenticate(self, key: str) -> Caller | None:
        """The caller a presented key stands for; None when unknown or revoked."""
        row = await self.keys.authenticate(hash_key(key), TOUCH_INTERVAL_S)
        if row is None:
            return None
        return Caller(key_id=row.id, name=row.name, role=ApiKeyRole(row.role))

    async def is_live(self, key: str) -> bool:
        row = await self.keys.by_hash(hash_key(key))
        return row is not None and row.revoked_at is None

    async def list(self, include_revoked: bool = False) -> Sequence[Row]:
        return await self.keys.all(include_revoked)
