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

# kB of new entries a trigram index holds in its pending list before merging them in
# (PostgreSQL's default: 4 MB). The planner prices every search by that list: after a
# 10,000-row import, 4 MB of it made a scan of the whole table look cheaper until the next
# vacuum (migration 0005). Merging every 256 kB costs an import nothing measurable.
SEARCH_PENDING_LIST_KB = 256


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # `contacts(search:)` is a substring match on name or phone: trigram indexes.
        *(
            Index(
                None,
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
                postgresql_with={"gin_pending_list_limit": SEARCH_PENDING_LIST_KB},
            )
            for column in ("name", "phone")
        ),
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
    # The contact's last message to the business: for 24 hours its customer-service window
    # is open, and reaching it does not count against the messaging limit.
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    categories: Mapped[list[Category]] = relationship(
        secondary="category_contacts", lazy="raise", back_populates="contacts"
    )
