"""Assembles the schema from each domain's Query and Mutation types."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types

from schema.extensions import TransactionBoundary
from schema.system.queries import SystemQuery

Query = merge_types("Query", (SystemQuery,))

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
