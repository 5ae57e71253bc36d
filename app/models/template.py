"""templates: the WhatsApp Business Account's message templates, as last synced or reported."""

from __future__ import annotations

from typing import Any

from sqlalchemy import SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class Template(IdMixin, TimestampMixin, Base):
    __tablename__ = "templates"
    # A campaign names its template by (name, language), as the Cloud API's send does.
    __table_args__ = (UniqueConstraint("name", "language"),)

    whatsapp_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    # The Cloud API's words, unchecked: a status or category WhatsApp adds later is kept
    # (and read as UNKNOWN, app/models/enums.py), never refused.
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    # WhatsApp's reason for the latest status (a rejection's, a pause's), if it gave one.
    reason: Mapped[str | None] = mapped_column(Text)
    components: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # Derived from the BODY component when written (app/templates/service.py).
    body: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    parameter_count: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
