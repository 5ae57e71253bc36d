"""messaging_limit: the portfolio's messaging limit as the Cloud API last reported it
(one row; HERALD_WHATSAPP_MESSAGING_LIMIT overrides it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, SmallInteger, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class MessagingLimit(Base):
    __tablename__ = "messaging_limit"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, default=1)
    # Unique users per moving 24 hours; NULL: unlimited.
    tier: Mapped[int | None] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
