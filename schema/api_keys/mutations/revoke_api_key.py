"""revokeApiKey: the key is refused from the next request on, in every API process."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api_keys.auth import announce_revocation
from app.api_keys.service import ApiKeyService
from schema.api_keys.types import ApiKeyType
from schema.common.errors import NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import after_commit, savepoint
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class RevokeApiKeySuccess:
    api_key: ApiKeyType


RevokeApiKeyResult = Annotated[
    RevokeApiKeySuccess | NotFoundError, strawberry.union("RevokeApiKeyResult")
]


@strawberry.type
class RevokeApiKeyMutation:
    @strawberry.mutation(
        description="Revoke an API key. Idempotent: revoking twice keeps the first time.",
        extensions=admin(),
    )
    @savepoint
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyResult:
        key_id = parse_id(id, "ApiKey", "id")
        row = await ApiKeyService(info.context.session).revoke(key_id)
        context = info.context
        after_commit(info, announce_revocation, context.redis, context.auth.callers, key_id)
        return RevokeApiKeySuccess(api_key=ApiKeyType.from_row(row))
