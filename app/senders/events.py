"""The account-level webhook fields: phone_number_quality_update (a number's quality, and
the portfolio's limit) and business_capability_update (the portfolio's limit).

Applied in the webhook's transaction, each in a savepoint of its own; the pauses they cause
are recorded in its changes (app/changes), and a new limit, which calls for the reach set
to be re-seeded once committed, is returned as `AccountEffects`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.changes import nested
from app.config import Settings
from app.models import QualityRating
from app.senders.service import SenderService, parse_tier
from app.whatsapp.limit import SEEDED_KEY

logger = logging.getLogger(__name__)

QUALITY = "phone_number_quality_update"
CAPABILITY = "business_capability_update"
FIELDS = frozenset({QUALITY, CAPABILITY})
_RATINGS = {r.value.upper(): r for r in QualityRating}


@dataclass
class AccountEffects:
    tier_changed: bool = False


def account_changes(payload: Any) -> list[tuple[str, dict[str, Any]]]:
    """(field, value) of every account-level change of a delivery."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return []
    return [
        (change["field"], change["value"])
        for entry in payload["entry"]
        if isinstance(entry, dict) and isinstance(entry.get("changes"), list)
        for change in entry["changes"]
        if isinstance(change, dict)
        and change.get("field") in FIELDS
        and isinstance(change.get("value"), dict)
    ]


async def apply_account_changes(
    session: AsyncSession, settings: Settings, changes: list[tuple[str, dict[str, Any]]]
) -> AccountEffects:
    effects = AccountEffects()
    service = SenderService(session, settings)
    for kind, value in changes:
        try:
            async with nested(session):
                await _apply(service, kind, value, effects)
        except Exception as exc:
            if isinstance(exc, OSError) or (
                isinstance(exc, DBAPIError) and exc.connection_invalidated
            ):
                raise  # the database, not the change: the delivery is answered 503
            logger.exception("webhook %s change skipped: %s", kind, type(exc).__name__)
    return effects


async def _apply(
    service: SenderService, kind: str, value: dict[str, Any], effects: AccountEffects
) -> None:
    """One change: a limit it reports, and for a quality update the number's new state."""
    tier = value.get("max_daily_conversations_per_business")
    if tier is None:  # the per-phone field older payloads carry
        tier = value.get("max_daily_conversation_per_phone", value.get("current_limit"))
    understood, limit = parse_tier(tier)
    if understood:
        effects.tier_changed |= await service.tier_reported(limit)
        logger.info("messaging limit reported by %s: %s", kind, limit or "unlimited")
    if kind != QUALITY:
        return
    display = str(value.get("display_phone_number") or "").lstrip("+")
    event = str(value.get("event") or "")
    rating = _RATINGS.get(str(value.get("quality_rating") or "").upper())
    if display.isdigit():
        await service.quality_changed(display, event, rating)
        logger.info("sender number +%s: %s (quality %s)", display, event, rating)


async def follow_up(redis: Redis, effects: AccountEffects) -> None:
    """Once committed: a new limit re-seeds the reach set (after an unlimited tier it
    recorded nothing)."""
    if effects.tier_changed:
        try:
            await redis.delete(SEEDED_KEY)
        except RedisError as exc:
            logger.warning("reach set not re-seeded after a limit change: %r", exc)
