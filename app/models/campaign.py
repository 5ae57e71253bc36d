"""campaigns: one WhatsApp template sent to the contacts of target categories."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, IdMixin, TimestampMixin, checked_enum
from app.models.enums import CampaignStatus, PauseCode

if TYPE_CHECKING:
    from app.models.category import Category

campaign_categories = Table(
    "campaign_categories",
    Base.metadata,
    Column(
        "campaign_id",
        BigInteger,
        ForeignKey("campaigns.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "category_id",
        BigInteger,
        ForeignKey("categories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index(None, "category_id"),
)


class Campaign(IdMixin, TimestampMixin, Base):
    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    template_name: Mapped[str] = mapped_column(String(512), nullable=False)
    template_language: Mapped[str] = mapped_column(String(16), nullable=False, default="en")
    template_body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # How each body parameter of the template is filled, in order: [{"source": "attribute",
    # "value": "first_name"}, ...]; empty: by the placeholders' own names (app/templates).
    template_parameters: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    status: Mapped[CampaignStatus] = mapped_column(
        checked_enum(CampaignStatus, "campaign_status"),
        nullable=False,
        server_default=CampaignStatus.DRAFT.value,
        index=True,
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The one number it sends through; NULL: the pool of sender numbers.
    sender_number_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sender_numbers.id", ondelete="SET NULL")
    )
    # Set when Herald paused the campaign over a Cloud API error (app/whatsapp/errors.py);
    # cleared when it leaves `paused`.
    pause_code: Mapped[PauseCode | None] = mapped_column(checked_enum(PauseCode, "pause_code", 32))
    pause_error_code: Mapped[int | None] = mapped_column(Integer)
    pause_message: Mapped[str | None] = mapped_column(Text)

    targets: Mapped[list[Category]] = relationship(secondary=campaign_categories, lazy="raise")
