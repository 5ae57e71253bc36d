"""sender_numbers: the business phone numbers campaigns send through, each with its own
throughput and quality (the messaging limit is the portfolio's: messaging_limit.py)."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin, checked_enum
from app.models.enums import QualityRating, SenderStatus


class SenderNumber(IdMixin, TimestampMixin, Base):
    __tablename__ = "sender_numbers"

    # The Cloud API's phone number id: sends go to /{phone_number_id}/messages.
    phone_number_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # Digits only, as webhooks name the number (phone_number_quality_update).
    display_number: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    throughput: Mapped[int] = mapped_column(Integer, nullable=False)  # messages per second
    quality_rating: Mapped[QualityRating] = mapped_column(
        checked_enum(QualityRating, "quality_rating"),
        nullable=False,
        server_default=QualityRating.UNKNOWN.value,
    )
    status: Mapped[SenderStatus] = mapped_column(
        checked_enum(SenderStatus, "sender_status"),
        nullable=False,
        server_default=SenderStatus.CONNECTED.value,
    )
    # Why the number takes no campaign traffic (RED or FLAGGED); None while it does.
    flagged_reason: Mapped[str | None] = mapped_column(Text)
