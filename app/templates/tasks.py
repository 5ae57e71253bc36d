"""A sync of the templates with the WhatsApp Business Account (`herald templates sync`, and
`herald dev` with the simulated provider): the listing, the table, and the campaigns of the
templates WhatsApp paused or disabled, paused in the same transaction."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.service import CampaignDispatchService
from app.changes import committed_changes
from app.changes.apply import apply_changes
from app.config import Settings
from app.templates.service import HALTING, Synced, TemplateService
from app.whatsapp.templates import list_templates


async def sync_templates(
    settings: Settings, sessionmaker: Callable[[], AsyncSession], redis: Redis
) -> Synced:
    """Raises ListingError (app/whatsapp/templates.py), changing nothing, when the account's
    listing cannot be read to its end."""
    listed = await list_templates(settings)  # before the transaction: it takes a while
    async with sessionmaker() as session:
        synced = await TemplateService(session).sync(listed)
        dispatch = CampaignDispatchService(session)
        paused = [await dispatch.pause_for_error(HALTING[s], key) for key, s in synced.halted]
        await session.commit()
    await apply_changes(redis, committed_changes(session))  # the pauses announced
    synced.campaigns_paused = sum(len(each.campaign_ids) for each in paused)
    return synced
