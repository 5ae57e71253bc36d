"""The limits as schema extensions: the variables' bounds; then parsing, the operation, the
rate limit, shape and validation, time, each group a function a stream opened over HTTP
calls too; and what the planned path hands over so that nothing is counted twice."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.cache import count_round_trips
from app.compat import graphql_schema
from app.config import Settings
from app.http.graphql import Parameters, Refusal
from app.http.persisted import Document
from app.http.ratelimit import Verdict, limiter_for
from app.process.runtime import Runtime
from schema.context import Context
from schema.execution.pipeline import (
    ParsedDocument,
    forget_document,
    method_error,
    parse_request_document,
    select_operation,
    validation_errors,
    variables_error,
)
from schema.limits.errors import (
    LimitError,
    QueryTimeoutError,
    RateLimitedError,
    SubscriptionOverHttpError,
)
from schema.limits.refusals import known_refusal, remember_refusal
from schema.limits.shape import limit_error

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.api_keys.auth import RequestAuth

# The package's name, as before it was split: log configuration and filters keep working.
logger = logging.getLogger(__package__)


class QueryLimits(SchemaExtension):
    """The standard path's steps from parsing to execution (schema/execution/pipeline.py):
    those up to the rate limit (`parse_steps`); a subscription outside a stream refused; the
    shape limits and validation (`shape_and_validation`); the document registered by hash
    remembered; the time limit around execution. A stream opened over HTTP takes the same
    steps before it answers (schema/streams.py)."""

    parsed: ParsedDocument | None = None

    async def on_parse(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        assert ctx.query is not None  # the view refuses a request without one first
        # The name as the request gives it: the document is not the context's yet.
        self.parsed, _ = await parse_steps(
            ctx.context, ctx.query, ctx.operation_name, ctx.variables
        )
        ctx.graphql_document = self.parsed.document
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        context: Context = ctx.context
        # Just after Strawberry's check of the operation's type: a subscription needs a
        # stream (WebSocket, SSE, multipart), whose operations are given the live hub.
        if ctx.operation_type is OperationType.SUBSCRIPTION and context.live is None:
            raise SubscriptionOverHttpError
        assert self.parsed is not None  # on_parse ran
        # Set, so Strawberry does not validate again; a list of its own, as error reporting
        # edits the list it is given.
        ctx.pre_execution_errors = list(
            shape_and_validation(
                context,
                graphql_schema(ctx.schema),
                self.parsed,
                ctx.query,
                ctx.operation_name,
                ctx.variables,
            )
        )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        settings = self._settings()
        ctx = self.execution_context
        handoff = handoff_of(ctx.context)
        if handoff is not None and handoff.timed_out:  # the planned path ran out of time
            raise QueryTimeoutError(settings.query_timeout_s)
        assert ctx.query is not None
        await remember_document(ctx.context, ctx.query)
        try:
            async with asyncio.timeout(settings.query_timeout_s):
                yield
        except TimeoutError:
            logger.warning(
                "operation %s stopped after %g s",
                ctx.operation_name or "-",
                settings.query_timeout_s,
            )
            raise QueryTimeoutError(settings.query_timeout_s) from None

    def _settings(self) -> Settings:
        context: Context = self.execution_context.context
        return context.settings


async def parse_steps(
    context: Context, query: str, operation_name: str | None, variables: dict[str, Any] | None
) -> tuple[ParsedDocument, OperationDefinitionNode]:
    """The steps from a rate limit refusal known without a round trip to the rate limit: a
    shape refusal the same document already got (`known_refusal`: it was not kept parsed),
    the cached parse under the token limit (or the planned path's failed parse, handed over:
    a document over the token limit is not parsed twice), the operation it names (no
    mutation over GET), the trusted documents, then the rate limit itself."""
    refuse_known_rate_limit(context)
    if (known := known_refusal(query, operation_name, variables)) is not None:
        raise known
    handoff = handoff_of(context)
    if handoff is not None and handoff.unparsed is not None:
        raise handoff.unparsed
    parsed = await parse_request_document(query, context.settings.query_max_tokens)
    operation = select_operation(parsed.document, operation_name)
    request = context.request
    if isinstance(request, Request) and (error := method_error(operation, request.method)):
        context.response.headers["Allow"] = "POST"
        raise error
    runtime: Runtime = request.app.state.runtime
    if not runtime.persisted.allows(query):  # a WebSocket's (HTTP's: checked before)
        raise LimitError(
            "only trusted documents may run on this server", "PERSISTED_QUERY_NOT_ALLOWED"
        )
    await rate_limit(context)
    return parsed, operation


def shape_and_validation(
    context: Context,
    schema: GraphQLSchema,
    parsed: ParsedDocument,
    query: str | None,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> list[GraphQLError]:
    """The shape limits, raised (the operation ends there: nothing is validated, as some of
    the standard rules cost time quadratic in repeated fields); then the cached validation's
    errors (the cache's own list: copy it before editing). A document refused by either
    leaves the parse cache here, where every refusal ends (the planned path hands them over
    with the parse still cached), a shape refusal remembered in its place; not one refused
    for its variables' values (a search too long, a cost through `first: $n`), which the
    next request sends with others: it keeps its parse and validation."""
    settings = context.settings
    error = limit_error(settings, schema, parsed.document, query, operation_name, variables)
    if error is None:
        errors = validation_errors(parsed, schema, settings.introspection_enabled)
        if errors and query is not None:
            forget_document(query, settings.query_max_tokens)
        return errors
    if query is not None and remember_refusal(query, operation_name, variables, error):
        forget_document(query, settings.query_max_tokens)
    raise error


HANDOFF = "herald.handoff"  # the request scope's key for a Handoff


@dataclass
class Handoff:
    """What the planned path (schema/execution/endpoint.py) already did for a request it hands
    over to the standard path, so that nothing is done twice: a 1 MB body decoded a second
    time, or its variables walked again, holds the event loop for milliseconds each."""

    # The request's parameters as read from its body or query string, or why they are refused.
    parameters: Parameters | Refusal | None = None
    variables_within_bounds: bool = False  # `variables_error` found nothing to refuse
    document: Document | None = None  # the document it named, found
    verdict: Verdict | None = None  # the rate limiter's answer, when it was asked
    unparsed: GraphQLError | None = None  # why the document does not parse (or is too long)
    timed_out: bool = False  # the operation already ran out of time


def handoff_of(context: Context) -> Handoff | None:
    return handoff_of_scope(context.request.scope)


def handoff_of_scope(scope: Mapping[str, Any]) -> Handoff | None:
    found = scope.get(HANDOFF)
    return found if isinstance(found, Handoff) else None


async def take_rate_limit(
    settings: Settings, redis: Redis, auth: RequestAuth, client: str | None
) -> Verdict | None:
    """Count one operation against the caller's window (per API key, else per client
    address); None when rate limiting is off. Also learns the key revocation epoch."""
    if settings.rate_limit_requests <= 0:
        return None
    buckets = _buckets(auth, client)
    with count_round_trips():  # the limiter's, not the request's own (`redisRoundTrips`)
        verdict = await limiter_for(redis).hit(
            buckets, settings.rate_limit_requests, settings.rate_limit_window_s
        )
    if verdict.revocation_epoch is not None:
        auth.observe_epoch(verdict.revocation_epoch)
    return verdict


def known_rate_limit(
    settings: Settings, redis: Redis, auth: RequestAuth, client: str | None
) -> Verdict | None:
    """The rate limit's refusal when this process knows it without a round trip (a window
    it found full stays full until its oldest request leaves it: app/http/ratelimit.py); None
    when Redis must decide. Checked before the document is parsed, so a flood from a caller
    whose window is used costs neither a parse nor a round trip."""
    if settings.rate_limit_requests <= 0:
        return None
    wait = limiter_for(redis).known_wait(_buckets(auth, client))
    return None if wait is None else Verdict(wait, None)


def _buckets(auth: RequestAuth, client: str | None) -> list[str]:
    """A key known to be valid counts against its own window. Any other token also counts
    against its client's address, so a new bogus token per request gains nothing."""
    address = f"ip:{client or '-'}"
    digest = auth.token_digest
    if digest is None or not auth.well_formed:
        return [address]
    if auth.known_caller() is not None:
        return [f"key:{digest}"]
    return [f"key:{digest}", address]


class VariableLimits(SchemaExtension):
    """Variables nested too deep or holding too many values, refused before anything else
    reads them (schema/execution/pipeline.py). Listed first, so a refusal leaves no other extension
    half-entered and costs no statement or round trip. Not walked again when the planned path
    or a stream found them within bounds (`Handoff`)."""

    def on_operation(self) -> Iterator[None]:
        handoff = handoff_of(self.execution_context.context)
        if handoff is None or not handoff.variables_within_bounds:
            context: Context = self.execution_context.context
            error = variables_error(self.execution_context.variables, context.settings)
            if error is not None:
                raise error
        yield


def refuse_known_rate_limit(context: Context) -> None:
    """The step before the parse: refused with 429 and `Retry-After` when this process
    already knows the caller's window is full (`known_rate_limit`)."""
    handoff = handoff_of(context)
    if handoff is not None and handoff.verdict is not None:
        verdict: Verdict | None = handoff.verdict
    else:
        client = context.request.client
        verdict = known_rate_limit(
            context.settings, context.redis, context.auth, client.host if client else None
        )
    _refuse(context, verdict)


async def rate_limit(context: Context) -> None:
    """The rate limit step: refused with 429 and `Retry-After` when the caller's window is
    full; counted once, by whichever step came first (the planned path's, or a stream's
    before it opens) when the request carries a Handoff."""
    handoff = handoff_of(context)
    if handoff is not None and handoff.verdict is not None:
        verdict: Verdict | None = handoff.verdict
    else:
        client = context.request.client
        verdict = await take_rate_limit(
            context.settings, context.redis, context.auth, client.host if client else None
        )
        if handoff is not None:
            handoff.verdict = verdict
    _refuse(context, verdict)


def _refuse(context: Context, verdict: Verdict | None) -> None:
    if verdict is not None and (retry_after_ms := verdict.retry_after_ms) is not None:
        retry_after = max(1, math.ceil(retry_after_ms / 1000))
        context.response.headers["Retry-After"] = str(retry_after)
        raise RateLimitedError(retry_after)


REMEMBER = "herald.remember"  # the request scope's key for the hash of a document to store


async def remember_document(context: Context, query: str) -> None:
    """A document sent with its hash (automatic persisted queries), stored once it validated
    (app/http/persisted.py); nothing for any other request."""
    sha256 = context.request.scope.get(REMEMBER)
    if sha256 is not None:
        runtime: Runtime = context.request.app.state.runtime
        await runtime.persisted.remember(sha256, query, context.redis)
