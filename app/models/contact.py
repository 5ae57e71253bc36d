"""contacts: the people a campaign can reach, keyed by E.164 phone number."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, IdMixin, TimestampMixin, checked_enum
from app.models.enums import WhatsAppStatus

if TYPE_CHECKING:
    from app.models.category import Category


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # `contacts(search:)` is a substring match on name or phone: trigram indexes.
        Index(None, "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index(None, "phone", postgresql_using="gin", postgresql_ops={"phone": "gin_trgm_ops"}),
    )

    phone: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    whatsapp_status: Mapped[WhatsAppStatus] = mapped_column(
        checked_enum(WhatsAppStatus, "whatsapp_status"),
        nullable=False,
        server_default=WhatsAppStatus.UNKNOWN.value,
    )
    whatsapp_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    categories: Mapped[list[Category]] = relationship(
        secondary="category_contacts", lazy="raise", back_populates="contacts"
    )
