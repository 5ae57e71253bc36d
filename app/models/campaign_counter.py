"""campaign_counters: per campaign, messages per status and interactions, kept by triggers.

Rows are shards: a campaign's figures are the SUM over its rows, so concurrent writers
(workers, webhooks) add to different rows instead of queueing on one. Only the triggers
of the `counters` migration write here, plus `herald stats verify --repair`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

_ZERO = text("0")


class CampaignCounter(Base):
    __tablename__ = "campaign_counters"

    # No foreign key: rows of a deleted campaign are removed by a trigger on campaigns.
    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    pending: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    sending: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    sent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    read: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
    interactions: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=_ZERO)
