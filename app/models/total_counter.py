"""total_counters: the dashboard's totals over every campaign, kept by triggers.

Messages per status and interactions over all campaigns, the categories, and the
campaigns per status. Sharded like campaign_counters: the figures are the SUM over the
rows, a handful however many campaigns there are.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

_ZERO = text("0")


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default=_ZERO)


class TotalCounter(Base):
    __tablename__ = "total_counters"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    pending: Mapped[int] = _count()
    sending: Mapped[int] = _count()
    sent: Mapped[int] = _count()
    delivered: Mapped[int] = _count()
    read: Mapped[int] = _count()
    failed: Mapped[int] = _count()
    interactions: Mapped[int] = _count()
    categories: Mapped[int] = _count()
    campaigns_draft: Mapped[int] = _count()
    campaigns_scheduled: Mapped[int] = _count()
    campaigns_sending: Mapped[int] = _count()
    campaigns_paused: Mapped[int] = _count()
    campaigns_completed: Mapped[int] = _count()
    campaigns_cancelled: Mapped[int] = _count()
    campaigns_failed: Mapped[int] = _count()
