"""The domain enumerations, registered as GraphQL enums: import them from here in schema/."""

from __future__ import annotations

import strawberry

from app.models.enums import (
    ApiKeyRole,
    CampaignStatus,
    InteractionKind,
    MessageStatus,
    ParameterSource,
    PauseCode,
    QualityRating,
    SenderStatus,
    TemplateCategory,
    TemplateStatus,
    WhatsAppStatus,
)

# strawberry.enum annotates the class in place, so the domain enums are the GraphQL ones.
for _enum in (ApiKeyRole, CampaignStatus, InteractionKind, MessageStatus, WhatsAppStatus):
    strawberry.enum(_enum)
strawberry.enum(TemplateStatus, description="A WhatsApp template's review status.")
strawberry.enum(TemplateCategory, description="A WhatsApp template's category.")
strawberry.enum(
    ParameterSource,
    description="Where a template parameter's value comes from: the contact's NAME or PHONE, "
    "one of its ATTRIBUTES, or a TEXT sent as is to every contact.",
)
strawberry.enum(
    QualityRating,
    description="A sender number's quality as WhatsApp rates it; RED takes no campaign traffic.",
)
strawberry.enum(
    SenderStatus, description="FLAGGED: WhatsApp flagged the number; it takes no campaign traffic."
)
strawberry.enum(
    PauseCode,
    description="Why Herald paused a campaign: a WhatsApp Cloud API error that every further "
    "send would meet, or its sender number taking no traffic.",
)

__all__ = [
    "ApiKeyRole",
    "CampaignStatus",
    "InteractionKind",
    "MessageStatus",
    "ParameterSource",
    "PauseCode",
    "QualityRating",
    "SenderStatus",
    "TemplateCategory",
    "TemplateStatus",
    "WhatsAppStatus",
]
