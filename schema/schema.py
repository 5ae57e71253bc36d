"""Assembles the schema from each domain's Query and Mutation types."""

from __future__ import annotations

from datetime import datetime

from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.observability.requests import OperationLabel
from schema.api_keys.mutations import ApiKeyMutation
from schema.api_keys.queries import ApiKeyQuery
from schema.cache import RedisRoundTrips
from schema.campaigns.mutations import CampaignMutation
from schema.campaigns.queries import CampaignQuery
from schema.campaigns.subscriptions import CampaignSubscription
from schema.categories.mutations import CategoryMutation
from schema.categories.queries import CategoryQuery
from schema.common.scalars import BIG_INT, DATETIME, BigInt
from schema.common.selection import read_field
from schema.contacts.mutations import ContactMutation
from schema.contacts.queries import ContactQuery
from schema.dashboard.queries import DashboardQuery
from schema.execution.executor import PlannedExecutor
from schema.extensions import HeraldSchema, TransactionBoundary
from schema.limits import QueryLimits, VariableLimits
from schema.messages.queries import MessageQuery
from schema.nodes.queries import NodeQuery
from schema.senders.mutations import SenderMutation
from schema.senders.queries import SenderQuery
from schema.system.queries import SystemQuery
from schema.templates.queries import TemplateQuery

Query = merge_types(
    "Query",
    (
        ContactQuery,
        CategoryQuery,
        CampaignQuery,
        TemplateQuery,
        MessageQuery,
        DashboardQuery,
        SystemQuery,
        ApiKeyQuery,
        SenderQuery,
        NodeQuery,
    ),
)

Mutation = merge_types(
    "Mutation",
    (ContactMutation, CategoryMutation, CampaignMutation, ApiKeyMutation, SenderMutation),
)

Subscription = merge_types("Subscription", (CampaignSubscription,))


def build_schema(*more_extensions: type) -> HeraldSchema:
    """The schema, with extensions an app adds (tracing); each app builds its own."""
    return HeraldSchema(
        query=Query,
        mutation=Mutation,
        execution_context_class=PlannedExecutor,
        subscription=Subscription,
        # Attribute reads, except that a column a page did not fetch costs a statement.
        config=StrawberryConfig(
            default_resolver=read_field, scalar_map={datetime: DATETIME, BigInt: BIG_INT}
        ),
        extensions=[
            # First: refuse before anything else starts (schema/limits/,
            # schema/execution/pipeline.py).
            VariableLimits,
            OperationLabel,  # names the request in metrics and logs
            TransactionBoundary,
            RedisRoundTrips,
            # Parse (cached), rate limit, shape limits, validation (cached), timeout: the
            # request steps the planned path takes too (schema/execution/pipeline.py,
            # schema/limits/).
            QueryLimits,
            *more_extensions,
        ],
    )


schema = build_schema()  # without app-specific extensions: exported SDL, tests, tools
