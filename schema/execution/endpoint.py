"""Planned queries over HTTP: answered in front of the middleware, everything else by the view.

A query sent to /graphql, POSTed as JSON or as a GET, named by its text or by id or hash
(app/http/persisted.py), whose operation compiles to a plan (schema/execution/plans/), is answered
here,
without the middleware stack, the router, Strawberry's HTTP view, its extension runner and
graphql-core's execution loop, with the same steps they take, by the same functions and in
the same order (schema/execution/pipeline.py): the body size, the media types, the request's
parameters, the persisted document, the variables' bounds, the cached parse and its
operation, the rate limit, the shape limits, the cached validation, then the operation's
label, the timeout, the transaction boundary with its statement count and `Server-Timing`,
the Redis round trips, the request id, metrics and access line, and the same response bytes
in the media type `Accept` asks for (app/http/graphql.py).

Everything else goes to Strawberry's view (schema/view.py), which answers it as it always has:
other methods and content types, bodies over the limit, an `Accept` that takes no JSON,
malformed parameters, batches, unknown document ids, mutations, subscriptions,
introspection, variables over their bounds, documents that do not parse or validate,
variables that do not coerce, an operation over a limit or the rate limit, and any error
while answering: this path answers only what succeeds, so every refusal and every error is
the view's. Each step hands over what it would refuse, so the view refuses it at the same
step. A request handed over carries a `Handoff`, so the view neither decodes its body or
walks its variables again, nor looks its document up or counts it against the rate limit
again, nor runs an operation that already ran out of time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.execution.is_awaitable import optimized_is_awaitable

from app import compat
from app.cache import count_round_trips
from app.config import Settings
from app.http.graphql import (
    CONTENT_TYPES,
    Refusal,
    answer_media_type,
    decode_json,
    query_parameters,
    request_parameters,
)
from app.http.limits import BodyLimit, StreamedSize, declared_too_large
from app.http.protocol import CANCEL_ON_DISCONNECT, DISCONNECTED
from app.observability.metrics import PLANNED_QUERIES
from app.observability.requests import begin_request, end_request, label_operation, record_request
from app.process.runtime import Runtime
from schema.execution.pipeline import (
    json_media_type,
    parse_request_document,
    validation_errors,
    variables_error,
)
from schema.execution.plans import DocumentPlans, execute, query_operation
from schema.extensions import begin_read_only, request_boundary
from schema.limits import (
    HANDOFF,
    REMEMBER,
    Handoff,
    known_rate_limit,
    known_refusal,
    limit_error,
    remember_document,
    take_rate_limit,
)
from schema.view import HeraldGraphQL

logger = logging.getLogger(__name__)

_ANSWERED = PLANNED_QUERIES.labels("answered")
_HANDED_OVER = PLANNED_QUERIES.labels("handed_over")
_CONTENT_TYPES: dict[str | None, bytes] = {
    media: value.encode() for media, value in CONTENT_TYPES.items()
}
# Strawberry's predicate, as its schema passes it to graphql-core (typed there as a guard).
_IS_AWAITABLE: Any = optimized_is_awaitable


class PlannedQueries:
    """In front of the application's middleware (`app`): planned queries to `route` answered
    here, with the request id, metrics, access line and body size limit the middleware would
    give them; everything else, handed-over requests included, passed on to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        view: HeraldGraphQL,
        schema: strawberry.Schema,
        settings: Settings,
        route: BaseRoute,
        body_limit: BodyLimit,
    ) -> None:
        self.app = app
        self.view = view
        self.schema = schema
        self.settings = settings
        self.route = route
        self.path = getattr(route, "path", "/graphql")
        self.body_limit = body_limit
        # Schema extensions that wrap every resolver (tracing) must see each field.
        self.enabled = settings.fast_execution and not settings.otel_enabled
        executor_class = schema.execution_context_class
        assert executor_class is not None  # the schema's PlannedExecutor
        self.executor_class = executor_class
        self.plans = DocumentPlans(schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if not (
            self.enabled
            and scope["type"] == "http"
            and (method == "POST" or method == "GET")
            and scope["path"] == self.path
        ):
            await self.app(scope, receive, send)
            return
        max_bytes = self.body_limit.of(scope)
        content_type = accept = declared = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"content-length":
                declared = value
        # None for an `Accept` that takes no JSON: the view refuses it, or streams.
        answer_type = _CONTENT_TYPES.get(answer_media_type(accept.decode("latin-1")))
        if (
            answer_type is None
            or len(scope["query_string"]) > max_bytes
            or (
                method == "POST"
                and (
                    (declared and declared_too_large(declared, max_bytes))
                    or not json_media_type(content_type.decode("latin-1"))
                )
            )
        ):  # the size-limit middleware refuses what is over the limit, the view the rest
            await self.app(scope, receive, send)
            return
        info, token = begin_request(scope)
        scope[CANCEL_ON_DISCONNECT] = asyncio.current_task()  # a query: nothing to undo
        try:
            if method == "GET":
                body, complete, replay = None, True, receive
            else:
                body, complete = await _read_body(receive, max_bytes)
                if body is None:  # the client went away: 500, as the middleware has it
                    record_request(scope, info, 500)
                    return
                replay = _replay(body, complete, receive)
            handoff = Handoff()
            answer = None
            if complete:
                try:
                    answer = await self._answer(scope, replay, body, handoff)
                except Exception as exc:
                    # The view answers whatever went wrong here, exactly as it would have.
                    # At DEBUG with its traceback: the plan's lines show (app/codegen.py).
                    logger.debug("planned path handed over: %r", exc, exc_info=True)
            if answer is None:
                # Through the middleware (size limit, observability under the same id) to
                # the view, which may write: it runs to its end even if the client goes.
                scope.pop(CANCEL_ON_DISCONNECT, None)
                _HANDED_OVER.inc()
                scope[HANDOFF] = handoff
                await self.app(scope, replay, send)
                return
            scope.pop(CANCEL_ON_DISCONNECT, None)  # done: the answer is sent whatever happens
            _ANSWERED.inc()
            content, response = answer
            status = 200  # a result: the only answer this path gives
            headers = [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", answer_type),
                *response.raw_headers,
                (b"x-request-id", info.request_id.encode("latin-1")),
            ]
            # Recorded before the answer leaves, as the middleware does.
            record_request(scope, info, status)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not scope.get(DISCONNECTED) or task is None or task.uncancel():
                raise  # not (only) the client leaving: the server stopping, say
            record_request(scope, info, 499)  # nginx's "client closed request"
        finally:
            end_request(token)

    async def _answer(
        self, scope: Scope, receive: Receive, body: bytes | None, handoff: Handoff
    ) -> tuple[bytes, Response] | None:
        """The response of a planned query; None to hand the request to the view."""
        try:
            payload = query_parameters(scope["query_string"]) if body is None else decode_json(body)
            parameters = request_parameters(payload)
        except Refusal as refusal:
            handoff.parameters = refusal
            return None  # the view refuses it, at the same step
        handoff.parameters = parameters  # the view reads them from here: one decode
        runtime: Runtime = scope["app"].state.runtime
        try:
            named = await runtime.persisted.document(parameters, runtime.redis)
        except Refusal:
            return None
        handoff.document = named
        query, name = named.query, parameters.operation_name
        variables, extensions = parameters.variables, parameters.extensions
        if variables_error(variables, self.settings) is not None:
            return None
        handoff.variables_within_bounds = True
        settings = self.settings
        scope["route"] = self.route  # the request's label in metrics and logs, as routed
        request = Request(scope, receive)
        response = Response()
        del response.headers["content-length"]  # as the view's sub-response
        context = self.view.http_context(request, response)
        client = request.client.host if request.client else None
        known = known_rate_limit(settings, context.redis, context.auth, client)
        if known is not None:
            handoff.verdict = known
            return None
        if known_refusal(query, name, variables) is not None:
            return None
        try:
            parsed = await parse_request_document(query, settings.query_max_tokens)
        except GraphQLError as error:  # does not parse, or too many tokens
            handoff.unparsed = error
            return None
        if query_operation(parsed.document, name) is None:  # mutations, subscriptions
            return None
        graphql_schema = compat.graphql_schema(self.schema)
        async with request_boundary(context) as boundary:
            verdict = await take_rate_limit(settings, context.redis, context.auth, client)
            handoff.verdict = verdict
            if verdict is not None and verdict.retry_after_ms is not None:
                return None
            if limit_error(settings, graphql_schema, parsed.document, query, name, variables):
                return None
            if validation_errors(parsed, graphql_schema, settings.introspection_enabled):
                return None
            if named.remember is not None:
                scope[REMEMBER] = named.remember
                await remember_document(context, query)
            document = self.plans.get(query, name, parsed.document)
            if document is None:
                return None
            executor = self.executor_class.build(
                graphql_schema,
                document.document,
                None,  # the view's root value
                context,
                variables,
                name,
                is_awaitable=_IS_AWAITABLE,
                operation_extensions=extensions,
            )
            if isinstance(executor, list):  # variables that do not coerce
                return None
            plan = document.plan(executor)
            if plan is None:
                return None
            label_operation(document.operation_name)
            with count_round_trips() as trips:
                begin_read_only(context)
                try:
                    async with asyncio.timeout(settings.query_timeout_s):
                        data = await execute(plan, executor)
                except TimeoutError:
                    logger.warning(
                        "operation %s stopped after %g s",
                        document.operation_name or "-",
                        settings.query_timeout_s,
                    )
                    handoff.timed_out = True
                    return None
            boundary.succeeded = True
        result: dict[str, Any] = {"data": data}
        if settings.expose_sql_count:
            result["extensions"] = {
                "sqlStatements": boundary.statements,
                "redisRoundTrips": trips.value,
            }
        return orjson.dumps(result), response


async def _read_body(receive: Receive, max_bytes: int) -> tuple[bytes | None, bool]:
    """The body and whether it was read whole within the limit: reading stops at the message
    that takes it over, which the size-limit middleware then refuses, counted the same way
    (`StreamedSize`). None when the client went away."""
    size = StreamedSize(max_bytes)
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        chunks.append(message.get("body", b""))
        if size.over(message):
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` for the view once the body (or its start) has been read here: that again,
    then the connection's own messages (the rest of the body, a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
