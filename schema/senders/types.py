"""GraphQL types of the sender numbers and the messaging limit."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.senders.numbers import Number
from app.senders.outlook import Outlook, Window
from app.senders.service import LimitSource
from schema.common.enums import QualityRating, SenderStatus
from schema.common.ids import encoder
from schema.common.node import Node, database_id_field

strawberry.enum(
    LimitSource,
    description="Where the messaging limit in force comes from: HERALD_WHATSAPP_MESSAGING_LIMIT, "
    "the Cloud API's last report, or a new portfolio's 250 until one arrives.",
)


@strawberry.type(name="SenderNumber")
class SenderNumberType(Node):
    node_id = encoder("SenderNumber")

    database_id: int = database_id_field()
    phone_number_id: str = strawberry.field(description="The Cloud API's phone number id.")
    display_number: str = strawberry.field(description="The number as WhatsApp shows it.")
    throughput: int = strawberry.field(description="Messages per second it may send.")
    quality_rating: QualityRating
    status: SenderStatus
    flagged_reason: str | None = strawberry.field(
        description="Why it takes no campaign traffic; null while it does."
    )
    takes_traffic: bool = strawberry.field(
        description="False once RED or FLAGGED: campaigns bound to it pause, the pool skips it."
    )

    @classmethod
    def of(cls, number: Number) -> SenderNumberType:
        return cls(
            id=SenderNumberType.node_id(number.id),
            database_id=number.id,
            phone_number_id=number.phone_number_id,
            display_number=number.display_number,
            throughput=number.throughput,
            quality_rating=number.quality_rating,
            status=number.status,
            flagged_reason=number.flagged_reason,
            takes_traffic=number.takes_traffic,
        )


@strawberry.type(
    description="The portfolio's messaging limit: unique users reached with business-initiated "
    "messages outside a customer-service window in a moving 24 hours, shared by every "
    "sender number."
)
class MessagingLimit:
    tier: int | None = strawberry.field(description="Users per 24 hours; null: unlimited.")
    source: LimitSource
    used: int | None = strawberry.field(
        description="Users reached in the window now; null when Redis did not answer."
    )
    remaining: int | None = strawberry.field(
        description="Users the window can still take; null when unlimited or unknown."
    )
    window_resets_at: datetime | None = strawberry.field(
        description="When the oldest reach leaves the window and frees a slot."
    )

    @classmethod
    def of(cls, window: Window) -> MessagingLimit:
        usage = window.usage
        return cls(
            tier=window.limit.limit,
            source=window.limit.source,
            used=None if usage is None else usage.used,
            remaining=None if usage is None else usage.remaining,
            window_resets_at=window.resets_at,
        )


@strawberry.type(description="A campaign under the messaging limit.")
class CampaignReach:
    pending: int
    reachable_now: int | None = strawberry.field(
        description="Pending messages that may go now: to contacts whose customer-service "
        "window is open, and new recipients up to what the limit has left (a lower bound: "
        "contacts already reached today by another campaign go too). Null when unknown."
    )
    estimated_finish_at: datetime | None = strawberry.field(
        description="At the sender numbers' throughput, waiting for the slots the rest needs; "
        "null when nothing is pending or no number takes traffic."
    )
    waiting_until: datetime | None = strawberry.field(
        description="Set while the campaign (still SENDING) waits for the window to slide: "
        "when its next messages may go."
    )

    @classmethod
    def of(cls, outlook: Outlook) -> CampaignReach:
        return cls(
            pending=outlook.pending,
            reachable_now=outlook.reachable_now,
            estimated_finish_at=outlook.estimated_finish_at,
            waiting_until=outlook.waiting_until,
        )
