"""A sender number as dispatch and the API see it, and whether it takes campaign traffic."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import QualityRating, SenderStatus


@dataclass(frozen=True)
class Number:
    id: int
    phone_number_id: str
    display_number: str
    throughput: int  # messages per second
    quality_rating: QualityRating
    status: SenderStatus
    flagged_reason: str | None

    @property
    def takes_traffic(self) -> bool:
        """A RED or FLAGGED number takes no new campaign traffic."""
        return self.quality_rating != QualityRating.RED and self.status == SenderStatus.CONNECTED
