"""GraphQL types of API keys: the hash never leaves the server, the plaintext only once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.models import ApiKeyRole
from schema.common.ids import encoder
from schema.common.node import Node, database_id_field

strawberry.enum(ApiKeyRole, name="ApiKeyRole")  # registered in place, as in schema/common/enums.py


@strawberry.type(name="ApiKey")
class ApiKeyType(Node):
    node_id = encoder("ApiKey")

    database_id: int = database_id_field()
    name: str
    role: ApiKeyRole
    prefix: str = strawberry.field(description="The key's first characters, to recognize it.")
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="Approximate: updated at most once a minute."
    )
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ApiKeyType:
        return cls(
            id=ApiKeyType.node_id(row.id),
            database_id=row.id,
            name=row.name,
            role=ApiKeyRole(row.role),
            prefix=row.key_prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )
