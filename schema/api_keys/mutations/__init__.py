"""API key mutations (admin), merged into one Mutation part."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.api_keys.mutations.create_api_key import CreateApiKeyMutation
from schema.api_keys.mutations.revoke_api_key import RevokeApiKeyMutation

ApiKeyMutation = merge_types("ApiKeyMutation", (CreateApiKeyMutation, RevokeApiKeyMutation))
