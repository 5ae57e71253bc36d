"""The dispatch mutations (campaign lifecycle and contact verification) as one Mutation part."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.campaigns.mutations.cancel_campaign import CancelCampaignMutation
from schema.campaigns.mutations.pause_campaign import PauseCampaignMutation
from schema.campaigns.mutations.resume_campaign import ResumeCampaignMutation
from schema.campaigns.mutations.retry_failed_messages import RetryFailedMessagesMutation
from schema.campaigns.mutations.schedule_campaign import ScheduleCampaignMutation
from schema.campaigns.mutations.start_campaign import StartCampaignMutation
from schema.contacts.mutations.verify_contacts import VerifyContactsMutation

DispatchMutation = merge_types(
    "DispatchMutation",
    (
        StartCampaignMutation,
        ScheduleCampaignMutation,
        PauseCampaignMutation,
        ResumeCampaignMutation,
        CancelCampaignMutation,
        RetryFailedMessagesMutation,
        VerifyContactsMutation,
    ),
)
