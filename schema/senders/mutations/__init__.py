"""One GraphQL mutation per module; `SenderMutation` merges them."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.senders.mutations.add_sender_number import AddSenderNumberMutation
from schema.senders.mutations.set_campaign_sender_number import SetCampaignSenderNumberMutation

SenderMutation = merge_types(
    "SenderMutation", (AddSenderNumberMutation, SetCampaignSenderNumberMutation)
)
