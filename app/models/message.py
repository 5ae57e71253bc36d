"""messages: one per (campaign, contact); the UNIQUE pair is the no-double-send guarantee."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, IdMixin, TimestampMixin, checked_enum
from app.models.enums import MessageStatus

if TYPE_CHECKING:
    from app.models.campaign import Campaign
    from app.models.contact import Contact
    from app.models.interaction import Interaction


class Message(IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        # Audit 3.3: per-campaign status counts and status-filtered pages.
        Index(None, "campaign_id", "status"),
        Index(None, "contact_id"),
        # Newest-first pages of one campaign's messages (the nested connection) walk this.
        Index(None, "campaign_id", "id"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[MessageStatus] = mapped_column(
        checked_enum(MessageStatus, "message_status"),
        nullable=False,
        server_default=MessageStatus.PENDING.value,
    )
    provider_message_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    # The Cloud API's error code, when the provider gave one (app/whatsapp/errors.py).
    error_code: Mapped[int | None] = mapped_column(Integer)
    # Times handed to the provider; reconciliation re-sends a message of unknown fate
    # only while this is 1 (at most one automatic re-send).
    attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    # A message put back by a retry-later error is not claimed before `not_before`;
    # `deferrals` counts the put-backs, and past its code's allowance it fails instead.
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deferrals: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    campaign: Mapped[Campaign] = relationship(lazy="raise")
    contact: Mapped[Contact] = relationship(lazy="raise")
    interactions: Mapped[list[Interaction]] = relationship(lazy="raise", back_populates="message")
