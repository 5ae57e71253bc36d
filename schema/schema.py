"""Assembles the schema from each domain's Query and Mutation types."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types

from schema.campaigns.queries import CampaignQuery
from schema.categories.queries import CategoryQuery
from schema.contacts.queries import ContactQuery
from schema.dashboard.queries import DashboardQuery
from schema.extensions import TransactionBoundary
from schema.messages.queries import MessageQuery
from schema.system.queries import SystemQuery

Query = merge_types(
    "Query",
    (ContactQuery, CategoryQuery, CampaignQuery, MessageQuery, DashboardQuery, SystemQuery),
)

schema = strawberry.Schema(
    query=Query,
    extensions=[
        TransactionBoundary,
        # Parsing and validating the same document again on each request dominates
        # small queries; both caches are keyed by the document text.
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ],
)
