"""contact_counters: how many contacts exist and how many opted out, kept by triggers.

Sharded like campaign_counters: the figures are the SUM over the rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

_ZERO = text("0")


class ContactCounter(Base):
    __tablename__ = "contact_counters"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    contacts: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    opted_out: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
