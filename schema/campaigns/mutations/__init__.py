"""One GraphQL mutation per module; `CampaignMutation` merges them: the draft's edits, then
its lifecycle (start, schedule, pause, resume, cancel, retry)."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.campaigns.mutations.cancel_campaign import CancelCampaignMutation
from schema.campaigns.mutations.create_campaign import CreateCampaignMutation
from schema.campaigns.mutations.delete_campaign import DeleteCampaignMutation
from schema.campaigns.mutations.pause_campaign import PauseCampaignMutation
from schema.campaigns.mutations.resume_campaign import ResumeCampaignMutation
from schema.campaigns.mutations.retry_failed_messages import RetryFailedMessagesMutation
from schema.campaigns.mutations.schedule_campaign import ScheduleCampaignMutation
from schema.campaigns.mutations.set_campaign_targets import SetCampaignTargetsMutation
from schema.campaigns.mutations.start_campaign import StartCampaignMutation
from schema.campaigns.mutations.update_campaign import UpdateCampaignMutation

CampaignMutation = merge_types(
    "CampaignMutation",
    (
        CreateCampaignMutation,
        UpdateCampaignMutation,
        DeleteCampaignMutation,
        SetCampaignTargetsMutation,
        StartCampaignMutation,
        ScheduleCampaignMutation,
        PauseCampaignMutation,
        ResumeCampaignMutation,
        CancelCampaignMutation,
        RetryFailedMessagesMutation,
    ),
)
