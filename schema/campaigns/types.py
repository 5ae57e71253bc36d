"""GraphQL types of the campaigns domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError

from app.db.reads import Rows
from app.senders.outlook import Outlooks
from loaders.base import projected
from schema.cache import Cached
from schema.common.enums import CampaignStatus, MessageStatus, ParameterSource, PauseCode
from schema.common.ids import encoder, reported
from schema.common.node import Node, database_id_field
from schema.common.pagination import Connection
from schema.common.scalars import BigInt
from schema.common.selection import Projected
from schema.context import Info
from schema.execution.plans import batched
from schema.messages.pages import messages_of, messages_of_many
from schema.senders.types import CampaignReach, SenderNumberType
from schema.templates.types import TemplateParameter, TemplateType

if TYPE_CHECKING:
    from loaders.registry import Loaders
    from schema.categories.types import CategoryType
    from schema.messages.types import MessageType


FINISHED = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED})
# The columns `Campaign.template` is looked up by (the body: for a template not synced).
TEMPLATE_COLUMNS = ("template_name", "template_language", "template_body")
# And those `Campaign.pauseReason` is built from, in `PauseReason`'s.
PAUSE_COLUMNS = ("pause_code", "pause_error_code", "pause_message")


@strawberry.type(
    description="Why Herald paused a campaign: a Cloud API error every further send would "
    "meet. Resuming the campaign clears it; its pending messages then go out."
)
class PauseReason:
    code: PauseCode
    error_code: int = strawberry.field(description="The WhatsApp Cloud API error code.")
    message: str = strawberry.field(description="What happened and what to do about it.")

    @classmethod
    def of(
        cls, code: str | None, error_code: int | None, message: str | None
    ) -> PauseReason | None:
        """From the campaign's pause columns; None when Herald did not pause it."""
        if code is None:
            return None
        return cls(code=PauseCode(code), error_code=error_code or 0, message=message or "")


@strawberry.type
class MessageStats:
    """Counts per status; a message is counted once, in its current status. BigInts: summed
    over every campaign (`messageStats`, the dashboard's), they pass Int's 2^31 - 1 when the
    messages' keys do."""

    total: int = strawberry.field(graphql_type=BigInt)
    pending: int = strawberry.field(graphql_type=BigInt)
    sending: int = strawberry.field(graphql_type=BigInt)
    sent: int = strawberry.field(graphql_type=BigInt)
    delivered: int = strawberry.field(graphql_type=BigInt)
    read: int = strawberry.field(graphql_type=BigInt)
    failed: int = strawberry.field(graphql_type=BigInt)
    interaction_count: int = strawberry.field(graphql_type=BigInt)

    @strawberry.field(description="(delivered + read) / (sent + delivered + read); 0 when none.")
    def delivery_rate(self) -> float:
        out = self.sent + self.delivered + self.read
        return round((self.delivered + self.read) / out, 4) if out else 0.0

    @strawberry.field(
        description="read / (delivered + read); a lower bound, read receipts can be off."
    )
    def read_rate(self) -> float:
        reached = self.delivered + self.read
        return round(self.read / reached, 4) if reached else 0.0

    @classmethod
    def of(cls, counts: Mapping[Any, Any]) -> MessageStats:
        statuses = {s.value: counts.get(s.value, 0) for s in MessageStatus}
        return cls(
            total=sum(statuses.values()),
            interaction_count=counts.get("interactions", 0),
            **statuses,
        )


@strawberry.type(name="Campaign")
class CampaignType(Node, Projected):
    node_id = encoder("Campaign")

    database_id: int = database_id_field()
    name: str
    status: CampaignStatus
    pause_reason: PauseReason | None = strawberry.field(
        description="Set while the campaign is PAUSED by Herald over a Cloud API error; null "
        "when it was paused by hand, or is not paused."
    )
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    template_name: strawberry.Private[str]
    template_language: strawberry.Private[str]
    template_body: strawberry.Private[str]
    template_parameters: strawberry.Private[list[dict[str, Any]]]
    sender_number_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: Any) -> CampaignType:
        return cls(
            id=CampaignType.node_id(row.id),
            database_id=row.id,
            name=row.name,
            status=row.status,
            template_name=row.template_name,
            template_language=row.template_language,
            template_body=row.template_body,
            template_parameters=row.template_parameters,
            pause_reason=PauseReason.of(row.pause_code, row.pause_error_code, row.pause_message),
            scheduled_at=row.scheduled_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            sender_number_id=row.sender_number_id,
        )

    @classmethod
    async def refetch(cls, loaders: Loaders, item: Any) -> CampaignType | None:
        return await loaders.campaign_by_id.load(item.database_id)

    @classmethod
    def of_page(cls, rows: Rows) -> list[CampaignType]:
        """Campaigns of a page fetched for a selection: its columns set, the others
        unreadable, and the pause reason built when its columns were fetched."""
        build = projected(rows.fields, CampaignType, enums=False)
        campaigns: list[CampaignType] = build(rows.records)
        if PAUSE_COLUMNS[0] in rows.fields:
            code, error_code, message = (rows.fields.index(column) for column in PAUSE_COLUMNS)
            for campaign, row in zip(campaigns, rows.records, strict=True):
                campaign.pause_reason = PauseReason.of(row[code], row[error_code], row[message])
        return campaigns

    @strawberry.field(description="The WhatsApp template it sends, as last synced.")
    @batched(lambda campaigns, info: _templates_of(campaigns, info))
    async def template(self, info: Info) -> TemplateType:
        key = (self.template_name, self.template_language)
        found = await info.context.loaders.template_by_name_language.load(key)
        return found or TemplateType.unsynced(*key, self.template_body)

    @strawberry.field(
        name="templateParameters",
        description="Where each of the template's placeholders takes its value, in the order "
        "of `template.placeholders`; empty: each from the attribute its placeholder names.",
    )
    def parameters(self) -> list[TemplateParameter]:
        return [
            TemplateParameter(source=ParameterSource(item["source"]), value=item.get("value"))
            for item in self.template_parameters
        ]

    @strawberry.field(description="The one number it sends through; null: the pool.")
    async def sender_number(self, info: Info) -> SenderNumberType | None:
        if self.sender_number_id is None:
            return None
        number = await info.context.loaders.sender_number_by_id.load(self.sender_number_id)
        return None if number is None else SenderNumberType.of(number)

    @strawberry.field(
        description="How many pending messages may go now under the messaging limit, and "
        "when it should finish."
    )
    async def reach(self, info: Info) -> CampaignReach:
        context = info.context
        stats = await context.loaders.stats_by_campaign_id.load(self.database_id)
        outlooks = Outlooks(context.session, context.redis, context.settings)
        sending = self.status == CampaignStatus.SENDING
        outlook = await outlooks.campaign(
            self.database_id, sending, self.sender_number_id, stats.pending
        )
        return CampaignReach.of(outlook)

    @strawberry.field(description="The categories whose contacts this campaign reaches.")
    async def targets(
        self, info: Info
    ) -> list[Annotated[CategoryType, strawberry.lazy("schema.categories.types")]]:
        return await info.context.loaders.categories_by_campaign_id.load(self.database_id)

    @strawberry.field
    @batched(lambda campaigns, info, **arguments: _messages_of_many(campaigns, info, **arguments))
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: MessageStatus | None = None,
    ) -> Connection[Annotated[MessageType, strawberry.lazy("schema.messages.types")]]:
        loaders = info.context.loaders
        return await messages_of(
            info,
            self.database_id,
            loaders.message_page_by_campaign_id,
            loaders.message_count_by_campaign_id,
            first,
            after,
            status,
        )

    @strawberry.field(
        extensions=[
            Cached(
                "campaigns",
                ttl=lambda s: s.cache_ttl_campaign_stats,
                scope=lambda campaign: campaign.database_id,
                # Live while sending: cached only once the numbers can no longer move much.
                when=lambda campaign, _: campaign.status in FINISHED,
            )
        ]
    )
    async def stats(self, info: Info) -> MessageStats:
        return await info.context.loaders.stats_by_campaign_id.load(self.database_id)


async def _templates_of(campaigns: Sequence[CampaignType], info: Info) -> list[TemplateType]:
    """`Campaign.template` of many campaigns: one statement for all of them."""
    keys = [(campaign.template_name, campaign.template_language) for campaign in campaigns]
    found = await info.context.loaders.template_by_name_language.load_now(keys)
    return [
        template or TemplateType.unsynced(c.template_name, c.template_language, c.template_body)
        for template, c in zip(found, campaigns, strict=True)
    ]


async def _messages_of_many(
    campaigns: Sequence[CampaignType],
    info: Info,
    first: int | None = None,
    after: str | None = None,
    status: MessageStatus | None = None,
) -> list[Connection[MessageType]]:
    """`Campaign.messages` of a whole list of campaigns (planned queries)."""
    loaders = info.context.loaders
    return await messages_of_many(
        info,
        [campaign.database_id for campaign in campaigns],
        loaders.message_page_by_campaign_id,
        loaders.message_count_by_campaign_id,
        first,
        after,
        status,
    )


@strawberry.type
class CampaignProgress:
    """One event of the `campaignProgress` subscription."""

    id: strawberry.ID = strawberry.field(
        description="The same for every event of a campaign (its progress, not the campaign "
        "itself): a client cache keeps the latest one."
    )
    campaign_id: strawberry.Private[int]
    status: CampaignStatus
    pause_reason: PauseReason | None
    stats: MessageStats
    messages_per_second: float = strawberry.field(
        description="Messages that reached an outcome per second, over the last ~10 s."
    )
    eta_seconds: float | None = strawberry.field(
        description="Seconds until nothing is pending at the current rate; null when unknown "
        "or waiting for the messaging limit's window."
    )
    waiting_until: datetime | None = strawberry.field(
        description="Set while the campaign waits for the messaging limit's window to slide: "
        "when its next messages may go (see Campaign.reach)."
    )
    settled: bool = strawberry.field(
        description="True on the stream's last event only: the campaign is final and no late "
        "delivery or read status has moved its figures for HERALD_PROGRESS_SETTLE_S (or "
        "HERALD_PROGRESS_SETTLE_MAX_S have passed since its final status)."
    )

    @strawberry.field(
        description="The campaign as it is at this event, read afresh: selecting the fields "
        "a client shows updates its cached campaign too."
    )
    async def campaign(self, info: Info) -> CampaignType:
        campaign = await info.context.loaders.campaign_by_id.load(self.campaign_id)
        if campaign is None:  # deleted (a draft) while watched
            raise campaign_not_found(self.campaign_id)
        return campaign


def campaign_not_found(id: int | str) -> GraphQLError:
    """What a subscription to a campaign that does not exist (any more) gets."""
    return GraphQLError(
        f"Campaign {id} not found",
        extensions={"code": "NOT_FOUND", "entity": "Campaign", "id": reported("Campaign", str(id))},
    )
