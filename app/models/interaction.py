"""interactions: what a recipient did with a message (reply, click, reaction, opt-out)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, IdMixin, checked_enum
from app.models.enums import InteractionKind

if TYPE_CHECKING:
    from app.models.message import Message


class Interaction(IdMixin, Base):
    __tablename__ = "interactions"

    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Copied from the message by a trigger: the counters need it once the message is gone.
    campaign_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[InteractionKind] = mapped_column(
        checked_enum(InteractionKind, "interaction_kind"), nullable=False
    )
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    message: Mapped[Message] = relationship(lazy="raise", back_populates="interactions")
