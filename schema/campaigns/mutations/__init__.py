"""One GraphQL mutation per module; `CampaignMutation` merges the draft-editing ones.

The lifecycle ones (start, schedule, pause, resume, cancel, retry) are merged in
schema/campaigns/dispatch_mutations.py.
"""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.campaigns.mutations.create_campaign import CreateCampaignMutation
from schema.campaigns.mutations.delete_campaign import DeleteCampaignMutation
from schema.campaigns.mutations.set_campaign_targets import SetCampaignTargetsMutation
from schema.campaigns.mutations.update_campaign import UpdateCampaignMutation

CampaignMutation = merge_types(
    "CampaignMutation",
    (
        CreateCampaignMutation,
        UpdateCampaignMutation,
        DeleteCampaignMutation,
        SetCampaignTargetsMutation,
    ),
)
