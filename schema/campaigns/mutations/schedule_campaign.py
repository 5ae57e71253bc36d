"""scheduleCampaign: draft or scheduled → scheduled at a future time; a worker starts it then."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from app.campaigns.dispatch_service import CampaignDispatchService
from app.dispatch.jobs import jobs_for
from app.errors import InvalidInput, InvalidState, NotFound
from schema.cache import campaign_changed
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidInputError, InvalidStateError, NotFoundError
from schema.common.pagination import parse_id
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class ScheduleCampaignSuccess:
    campaign: CampaignType


ScheduleCampaignResult = Annotated[
    ScheduleCampaignSuccess | NotFoundError | InvalidStateError | InvalidInputError,
    strawberry.union("ScheduleCampaignResult"),
]


@strawberry.type
class ScheduleCampaignMutation:
    @strawberry.mutation(
        description="Start sending at `at` (with a UTC offset, in the future). "
        "Scheduling again replaces the earlier time.",
        extensions=admin(),
    )
    async def schedule_campaign(
        self, info: Info, id: strawberry.ID, at: datetime
    ) -> ScheduleCampaignResult:
        campaign_id = parse_id(id, "id")
        try:
            async with info.context.session.begin_nested():
                row = await CampaignDispatchService(info.context.session).schedule(campaign_id, at)
        except NotFound as exc:
            return NotFoundError.of(exc)
        except InvalidState as exc:
            return InvalidStateError.of(exc)
        except InvalidInput as exc:
            return InvalidInputError.of(exc)
        jobs = jobs_for(info.context.settings)
        delay_ms = max(0, int((at - datetime.now(UTC)).total_seconds() * 1000))

        async def enqueue() -> None:
            # Fires at `at`; if the campaign was rescheduled meanwhile it is not due and skips.
            jobs.start_scheduled(campaign_id, delay_ms=delay_ms)

        info.context.on_commit(enqueue)
        campaign_changed(info.context)  # lists and dashboard show the status
        return ScheduleCampaignSuccess(campaign=CampaignType.from_row(row))
