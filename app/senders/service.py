"""Sender number rules: which number a batch goes through, the portfolio's limit in force,
and what quality and limit changes reported by the Cloud API do."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CampaignRepository
from app.campaigns.service import CampaignDispatchService
from app.changes import changes_of
from app.config import Settings
from app.errors import InvalidInput, InvalidState, NotFound
from app.models import CampaignStatus, PauseCode, QualityRating, SenderStatus
from app.senders.numbers import Number
from app.senders.repository import Reported, SenderRepository
from app.whatsapp.errors import PauseReason
from app.whatsapp.limit import DEFAULT_TIER

DEFAULT_NUMBER_ID = "default"
BINDABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
)  # the default number's key when no phone number id is set


class LimitSource(StrEnum):
    CONFIGURED = "configured"  # HERALD_WHATSAPP_MESSAGING_LIMIT
    REPORTED = "reported"  # the Cloud API's last business_capability_update
    ASSUMED = "assumed"  # nothing reported yet: a new portfolio's 250


@dataclass(frozen=True)
class Limit:
    limit: int | None  # unique users per moving 24 hours; None: unlimited
    source: LimitSource


@dataclass(frozen=True)
class Route:
    """Where a batch goes: through `number`, under the portfolio's `limit`; no number and a
    `reason` when none of the campaign's numbers takes traffic."""

    number: Number | None
    limit: Limit
    reason: str = ""


def limit_in_force(settings: Settings, reported: Reported) -> Limit:
    if settings.whatsapp_messaging_limit is not None:
        return Limit(settings.whatsapp_messaging_limit.limit, LimitSource.CONFIGURED)
    if reported.reported:
        return Limit(reported.tier, LimitSource.REPORTED)
    return Limit(DEFAULT_TIER, LimitSource.ASSUMED)


def unavailable(reason: str) -> PauseReason:
    return PauseReason(PauseCode.SENDER_NUMBER_UNAVAILABLE, 0, reason)


class SenderService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.senders = SenderRepository(session)

    @property
    def default_id(self) -> str:
        return self.settings.whatsapp_phone_number_id or DEFAULT_NUMBER_ID

    async def _numbers_and_limit(self) -> tuple[list[Number], Reported]:
        """The numbers, the configured default one as its settings say (it joins the table,
        or follows a changed setting, the first time it is needed)."""
        numbers, reported = await self.senders.numbers_and_limit()
        s = self.settings
        configured = (s.whatsapp_display_number, s.whatsapp_rate_per_second)
        found = [n for n in numbers if n.phone_number_id == self.default_id]
        if not found or (found[0].display_number, found[0].throughput) != configured:
            await self.senders.add(self.default_id, *configured)
            numbers, reported = await self.senders.numbers_and_limit()
        return numbers, reported

    async def numbers(self) -> list[Number]:
        return (await self._numbers_and_limit())[0]

    async def limit(self) -> Limit:
        return limit_in_force(self.settings, await self.senders.reported())

    async def route(self, bound_id: int | None) -> Route:
        """The number for the next batch: the campaign's own, or one of the pool's usable
        numbers, picked in proportion to their throughput."""
        numbers, reported = await self._numbers_and_limit()
        limit = limit_in_force(self.settings, reported)
        if bound_id is not None:
            bound = [n for n in numbers if n.id == bound_id]
            if bound and bound[0].takes_traffic:
                return Route(bound[0], limit)
            reason = bound[0].flagged_reason if bound else None
            return Route(None, limit, reason or f"Sender number {bound_id} takes no traffic.")
        usable = [n for n in numbers if n.takes_traffic]
        if not usable:
            reasons = "; ".join(n.flagged_reason or n.display_number for n in numbers)
            return Route(None, limit, f"No sender number of the pool takes traffic: {reasons}")
        return Route(random.choices(usable, [n.throughput for n in usable])[0], limit)

    async def add(self, phone_number_id: str, display_number: str, throughput: int) -> Number:
        if not phone_number_id.isdigit() or len(phone_number_id) > 64:
            raise InvalidInput("phoneNumberId", "a Cloud API phone number id is digits")
        display = display_number.lstrip("+")
        if not display.isdigit() or len(display) > 32:
            raise InvalidInput("displayNumber", "the number as WhatsApp shows it, digits")
        if not 1 <= throughput <= 1_000:
            raise InvalidInput("throughput", "messages per second, 1 to 1,000")
        return await self.senders.add(phone_number_id, display, throughput)

    async def bind(self, campaign_id: int, number_id: int | None) -> Any:
        """Bind a campaign that has not ended to a sender number (None: the pool)."""
        if number_id is not None and not await self.senders.by_ids([number_id]):
            raise NotFound("SenderNumber", number_id)
        campaigns = CampaignRepository(self.session)
        row = await campaigns.bind_sender(campaign_id, number_id, BINDABLE)
        if row is not None:
            changes_of(self.session).campaign()
            return row
        found = await campaigns.by_ids([campaign_id])
        if not found:
            raise NotFound("Campaign", campaign_id)
        status = found[0].status
        raise InvalidState("Campaign", campaign_id, status, f"a {status} campaign has ended")

    async def quality_changed(
        self, display_number: str, event: str, rating: QualityRating | None
    ) -> None:
        """A phone_number_quality_update: a number that goes RED or FLAGGED takes no new
        campaign traffic; the campaigns bound to it pause (pool campaigns skip it, and the
        pauses are recorded in the transaction's changes)."""
        values: dict[str, Any] = {}
        if event == "FLAGGED":
            values["status"] = SenderStatus.FLAGGED
            rating = rating or QualityRating.RED
        elif event == "UNFLAGGED":
            values["status"] = SenderStatus.CONNECTED
            rating = rating or QualityRating.UNKNOWN
        if rating is not None:
            values["quality_rating"] = rating
        if not values:
            return
        changed = await self.senders.set_quality(display_number, values)
        for number in changed:
            reason = None if number.takes_traffic else self._reason(number)
            await self.senders.set_quality(number.display_number, {"flagged_reason": reason})
            if reason is not None:
                service = CampaignDispatchService(self.session)
                await service.pause_bound(unavailable(reason), number.id)

    @staticmethod
    def _reason(number: Number) -> str:
        what = "FLAGGED" if number.status == SenderStatus.FLAGGED else "rated RED"
        return (
            f"WhatsApp {what} sender number +{number.display_number}: it takes no new campaign "
            "traffic until its quality recovers. Resume once it does, or bind the campaign to "
            "another number or the pool (setCampaignSenderNumber), then resume."
        )

    async def tier_reported(self, tier: int | None) -> bool:
        """A business_capability_update (or a quality update's portfolio limit); whether
        the stored limit changed."""
        return await self.senders.report(tier)


def parse_tier(value: Any) -> tuple[bool, int | None]:
    """(understood, limit) of a reported limit: an integer (-1: unlimited) or TIER_2K-style."""
    if isinstance(value, bool):
        return False, None
    if isinstance(value, str) and value.startswith("TIER_"):
        name = value.removeprefix("TIER_")
        if name == "UNLIMITED":
            return True, None
        scale = {"K": 1_000, "M": 1_000_000}.get(name[-1:], 1)
        digits = name[:-1] if scale > 1 else name
        return (True, int(digits) * scale) if digits.isdigit() else (False, None)
    try:
        number = int(value)
    except (TypeError, ValueError):
        return False, None
    if number == -1:
        return True, None
    return (True, number) if 0 < number < 2**31 else (False, None)
