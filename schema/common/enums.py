"""The domain enumerations, registered as GraphQL enums: import them from here in schema/."""

from __future__ import annotations

import strawberry

from app.models.enums import (
    ApiKeyRole,
    CampaignStatus,
    InteractionKind,
    MessageStatus,
    PauseCode,
    WhatsAppStatus,
)

# strawberry.enum annotates the class in place, so the domain enums are the GraphQL ones.
for _enum in (ApiKeyRole, CampaignStatus, InteractionKind, MessageStatus, WhatsAppStatus):
    strawberry.enum(_enum)
strawberry.enum(
    PauseCode,
    description="Why Herald paused a campaign: a WhatsApp Cloud API error that every further "
    "send would meet.",
)

__all__ = [
    "ApiKeyRole",
    "CampaignStatus",
    "InteractionKind",
    "MessageStatus",
    "PauseCode",
    "WhatsAppStatus",
]
