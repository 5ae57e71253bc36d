"""Domain enumerations stored as checked strings."""

from __future__ import annotations

from enum import StrEnum


class WhatsAppStatus(StrEnum):
    UNKNOWN = "unknown"
    VALID = "valid"
    INVALID = "invalid"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PauseCode(StrEnum):
    """Why Herald paused a campaign: a Cloud API error that every further send would meet."""

    TEMPLATE_PAUSED = "template_paused"
    TEMPLATE_DISABLED = "template_disabled"
    TEMPLATE_MISMATCH = "template_mismatch"
    SPAM_RATE_LIMIT = "spam_rate_limit"
    ACCOUNT_RESTRICTED = "account_restricted"
    PAYMENT_REQUIRED = "payment_required"
    ACCESS_TOKEN_INVALID = "access_token_invalid"
    # Not an error: the campaign's sender number went RED or FLAGGED (or none is usable).
    SENDER_NUMBER_UNAVAILABLE = "sender_number_unavailable"


class QualityRating(StrEnum):
    """A sender number's quality as WhatsApp rates it (phone_number_quality_update)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    UNKNOWN = "unknown"


class SenderStatus(StrEnum):
    CONNECTED = "connected"
    FLAGGED = "flagged"  # quality dropped: its limit falls unless it improves


class TemplateStatus(StrEnum):
    """A WhatsApp template's review status, as the Cloud API spells it. Stored as the raw
    text, so a status WhatsApp adds later is kept as it came; `of` reads it as UNKNOWN."""

    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, raw: str | None) -> TemplateStatus:
        return cls._value2member_map_.get(raw or "", cls.UNKNOWN)  # type: ignore[return-value]


class TemplateCategory(StrEnum):
    """What WhatsApp bills and limits a template as (stored as the raw text, like the status)."""

    MARKETING = "MARKETING"
    UTILITY = "UTILITY"
    AUTHENTICATION = "AUTHENTICATION"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, raw: str | None) -> TemplateCategory:
        return cls._value2member_map_.get(raw or "", cls.UNKNOWN)  # type: ignore[return-value]


class ParameterSource(StrEnum):
    """Where a campaign takes the value of one of its template's body parameters."""

    NAME = "name"
    PHONE = "phone"
    ATTRIBUTE = "attribute"
    TEXT = "text"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class InteractionKind(StrEnum):
    REPLY = "reply"
    CLICK = "click"
    REACTION = "reaction"
    OPT_OUT = "opt_out"


class ApiKeyRole(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
