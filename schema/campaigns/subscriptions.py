"""Campaign subscriptions: live progress pushed over WebSocket (graphql-transport-ws) or a
streamed HTTP response (SSE, multipart: schema/streams.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from app.live.hub import CampaignNotFound, Snapshot
from schema.campaigns.types import (
    CampaignProgress,
    MessageStats,
    PauseReason,
    campaign_not_found,
)
from schema.common.ids import encoder, key_of
from schema.context import Info
from schema.permissions import viewer

# One id for every event of a campaign's progress: a client cache keeps the latest.
progress_id = encoder("CampaignProgress")


def _event(campaign_id: int, snapshot: Snapshot) -> CampaignProgress:
    return CampaignProgress(
        id=progress_id(campaign_id),
        campaign_id=campaign_id,
        status=snapshot.status,
        pause_reason=PauseReason.of(*snapshot.pause),
        stats=MessageStats.of(snapshot.counts),
        messages_per_second=snapshot.messages_per_second,
        eta_seconds=snapshot.eta_seconds,
        waiting_until=None
        if snapshot.waiting_until is None
        else datetime.fromtimestamp(snapshot.waiting_until, UTC),
        settled=snapshot.settled,
    )


@strawberry.type
class CampaignSubscription:
    @strawberry.subscription(
        description=(
            "The campaign's progress: its current state at once, then at most a few events "
            "a second while anything changes. Once it is completed, cancelled or failed, late "
            "delivery and read statuses still come as events; the stream ends when they have "
            "settled (no change for HERALD_PROGRESS_SETTLE_S, 5 s by default, or at the "
            "latest HERALD_PROGRESS_SETTLE_MAX_S, 60 s, after the final status), on an event "
            "with `settled: true`. Served over WebSocket (graphql-transport-ws), Server-Sent "
            "Events (graphql-sse) and multipart HTTP (Apollo's protocol)."
        ),
        extensions=viewer(),
    )
    async def campaign_progress(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[CampaignProgress, None]:
        hub = info.context.live
        # Given by every transport that streams (QueryLimits refuses the others first).
        assert hub is not None
        campaign_id = key_of(id, "Campaign", "id")
        if campaign_id is None:  # the global id of something else
            raise campaign_not_found(id)
        context = info.context
        # Each statement on its own (no transaction held open for the stream), and each
        # event read afresh: loaders of its own, not those of the events before it.
        context.session.read_only()
        # The caps are counted per operation by the transport (schema/websocket.py,
        # schema/streams.py).
        try:
            async with hub.watch(campaign_id) as mailbox:
                while (snapshot := await mailbox.get()) is not None:
                    context.loaders = context.loaders.renewed()
                    yield _event(campaign_id, snapshot)
        except CampaignNotFound:
            raise campaign_not_found(campaign_id) from None
