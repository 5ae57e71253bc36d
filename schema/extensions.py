"""Schema extensions: the request's transaction boundary, its SQL count and timing."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from app.changes import Changes, committed_changes
from app.changes.apply import apply_changes
from app.db.engine import count_statements
from app.observability.requests import record_statements
from schema.cache import check_cache_permissions
from schema.common.selection import refetching
from schema.context import Context
from schema.masking import report_errors

logger = logging.getLogger(__name__)


@dataclass
class Boundary:
    """One request's transaction: `succeeded` decides commit or rollback at exit."""

    succeeded: bool = False
    statements: int = 0


@asynccontextmanager
async def request_boundary(context: Context) -> AsyncIterator[Boundary]:
    """Commit once per request when it succeeded; then run after-commit work, and apply
    what its services recorded as changed (app/changes: generations, live progress, pauses).

    Counts the request's SQL statements and reports its server time (`Server-Timing`);
    the session is finished whatever happens, so nothing is ever half-written.
    """
    boundary = Boundary()
    committed = False
    changes: Changes | None = None
    started = time.perf_counter()
    with count_statements() as counter, refetching(context.loaders):
        try:
            yield boundary
            if boundary.succeeded and context.session.in_transaction():
                await context.session.commit()
                committed = True
                changes = committed_changes(context.session)
        finally:
            await context.session.finish()  # rolls back whatever was not committed
        boundary.statements = counter.value
        record_statements(counter.value)  # the per-request histogram in /metrics
    # Browsers' dev tools and the bench read the server's own share of a request here.
    elapsed_ms = (time.perf_counter() - started) * 1000
    context.response.headers["Server-Timing"] = f"graphql;dur={elapsed_ms:.2f}"
    if committed:
        for callback in context.after_commit:
            try:
                await callback()
            except Exception:
                # The data is durable; a failed follow-up must not turn into an error.
                logger.exception("after-commit callback failed")
    if changes is not None:
        try:
            await apply_changes(context.redis, changes, context.cache.service)
        except Exception:
            logger.exception("applying the request's changes failed")


def begin_read_only(context: Context) -> None:
    """A query writes nothing a transaction would protect (the key's last-use stamp stands
    alone), so it skips BEGIN and COMMIT: two round trips of a small page."""
    context.session.read_only()


class TransactionBoundary(SchemaExtension):
    """The request's transaction (`request_boundary`) around a GraphQL operation.

    Typed (union) errors roll back their own savepoint in the mutation; an unexpected
    error anywhere rolls back the whole request.
    """

    statements: int = 0

    async def on_operation(self) -> AsyncIterator[None]:
        context: Context = self.execution_context.context
        async with request_boundary(context) as boundary:
            yield
            result = self.execution_context.result
            boundary.succeeded = result is not None and not result.errors
        self.statements = boundary.statements

    async def on_execute(self) -> AsyncIterator[None]:
        context: Context = self.execution_context.context
        if self.execution_context.operation_type is OperationType.QUERY:
            begin_read_only(context)
        yield

    def get_results(self) -> dict[str, object]:
        context: Context = self.execution_context.context
        if context.settings.expose_sql_count:
            return {"sqlStatements": self.statements}
        return {}


class HeraldSchema(strawberry.Schema):
    """Logs unexpected errors with their stack and an id; a client's mistake is not a server
    event. Masks them in prod (schema/masking.py). Refuses to build with a cached field
    whose permission check would run after its cache lookup (schema/cache/field.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_cache_permissions(self)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        report_errors(errors, execution_context)
