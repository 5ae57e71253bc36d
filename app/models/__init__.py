"""SQLAlchemy models, one module per table; importing this package registers them all."""

from app.models.api_key import ApiKey
from app.models.base import Base
from app.models.campaign import Campaign, campaign_categories
from app.models.campaign_counter import CampaignCounter
from app.models.category import Category, category_contacts
from app.models.contact import Contact
from app.models.contact_counter import ContactCounter
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
from app.models.interaction import Interaction
from app.models.message import Message
from app.models.messaging_limit import MessagingLimit
from app.models.sender_number import SenderNumber
from app.models.template import Template
from app.models.total_counter import TotalCounter

__all__ = [
    "ApiKey",
    "ApiKeyRole",
    "Base",
    "Campaign",
    "CampaignCounter",
    "CampaignStatus",
    "Category",
    "Contact",
    "ContactCounter",
    "Interaction",
    "InteractionKind",
    "Message",
    "MessageStatus",
    "MessagingLimit",
    "ParameterSource",
    "PauseCode",
    "QualityRating",
    "SenderNumber",
    "SenderStatus",
    "Template",
    "TemplateCategory",
    "TemplateStatus",
    "TotalCounter",
    "WhatsAppStatus",
    "campaign_categories",
    "category_contacts",
]
