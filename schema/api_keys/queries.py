"""API key queries (admin)."""

from __future__ import annotations

import strawberry

from app.api_keys.service import ApiKeyService
from schema.api_keys.types import ApiKeyType
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(description="API keys, newest first.", extensions=admin())
    async def api_keys(self, info: Info, include_revoked: bool = False) -> list[ApiKeyType]:
        rows = await ApiKeyService(info.context.session).list(include_revoked)
        return [ApiKeyType.from_row(r) for r in rows]
