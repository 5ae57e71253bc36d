"""createApiKey: a new random key; its plaintext is in this response and nowhere else."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api_keys.service import ApiKeyService
from app.models import ApiKeyRole
from schema.api_keys.types import ApiKeyType
from schema.common.errors import InvalidInputError
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import admin


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: ApiKeyRole


@strawberry.type
class CreateApiKeySuccess:
    api_key: ApiKeyType
    key: str = strawberry.field(
        description="The secret, shown this once: only its SHA-256 is stored."
    )


CreateApiKeyResult = Annotated[
    CreateApiKeySuccess | InvalidInputError, strawberry.union("CreateApiKeyResult")
]


@strawberry.type
class CreateApiKeyMutation:
    @strawberry.mutation(description="Create an API key with a role.", extensions=admin())
    @savepoint
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyResult:
        created = await ApiKeyService(info.context.session).create(input.name, input.role)
        return CreateApiKeySuccess(api_key=ApiKeyType.from_row(created.row), key=created.key)
