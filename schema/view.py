"""The GraphQL view over HTTP and WebSocket: typed context, orjson encoding, and GraphQL over
HTTP as the spec has it (app/http/graphql.py): the answer's media type from `Accept`, its
status, JSON refusals, GET, persisted documents (app/http/persisted.py), streams (SSE and
multipart: schema/streams.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from app.api_keys.auth import RequestAuth
from app.db.engine import SerializedSession
from app.http.graphiql import PAGE_HEADERS, is_loopback, render_graphiql
from app.http.graphql import (
    CONTENT_TYPES,
    JSON,
    STREAM,
    Parameters,
    Refusal,
    answer_media_type,
    decode_json,
    graphql_status,
    is_request_error,
    query_parameters,
    request_parameters,
    response_media_type,
)
from app.live.hub import LiveHub
from app.process.runtime import Runtime
from schema.context import Context
from schema.execution.pipeline import json_media_type
from schema.fanout import SharedStreams
from schema.limits import REMEMBER, handoff_of_scope
from schema.request import request_cache, request_loaders
from schema.streams import Answered, Operation, stream_answer
from schema.websocket import (
    LegacyProtocolRefusal,
    LiveTransportHandler,
    TextWebSocketAdapter,
    pick_subprotocol,
)

# Request parameters that name a document without its text (app/http/persisted.py).
_DOCUMENT_IDS = ("documentId", "doc_id", "id", "extensions")
# graphql-sse's single connection mode reserves a stream with PUT and stops an operation
# with DELETE; its client, told only "GET and POST", would not know what to change.
_SINGLE_CONNECTION = (
    "GraphQL is served over GET and POST. graphql-sse's single connection mode (PUT to "
    "reserve a stream, DELETE to stop an operation) is not served: create its client "
    "without `singleConnection`, in distinct connections mode"
)


@dataclass
class HeraldRequestData(GraphQLRequestData):
    """Strawberry's request data, with the parameters that may name a persisted document and
    the stream the client accepts, if one is served (schema/streams.py)."""

    parameters: Parameters | None = None
    transport: HTTPStreamTransport | None = None
    only_streams: bool = False  # `Accept` names no JSON type


class HeraldRequestAdapter(StarletteRequestAdapter):
    """Strawberry's request adapter, with what the planned path read of the request."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        handoff = handoff_of_scope(request.scope)
        self.handed_over = None if handoff is None else handoff.parameters


class HeraldGraphQL(GraphQL[Context, None]):
    # Shown in the IDE's Headers tab (the dev key); only set when bound to loopback.
    graphiql_default_headers: dict[str, str] | None = None
    # graphql-transport-ws with the API key in connection_init (schema/websocket.py).
    graphql_transport_ws_handler_class = LiveTransportHandler
    graphql_ws_handler_class = LegacyProtocolRefusal
    websocket_adapter_class = TextWebSocketAdapter
    request_adapter_class = HeraldRequestAdapter
    shared_streams: SharedStreams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_streams = SharedStreams()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """The local GraphiQL page (app/http/graphiql.py): its assets come from Herald, not a CDN.

        The page needs no key to fetch, so the key goes only to callers on this machine.
        """
        client = request.client.host if request.client else None
        page = render_graphiql(
            root_path=request.scope.get("root_path", ""),
            default_headers=self.graphiql_default_headers if is_loopback(client) else None,
        )
        # The page may carry default headers (credentials): never store it in a cache.
        return HTMLResponse(page, headers={"Cache-Control": "no-store", **PAGE_HEADERS})

    async def pick_websocket_subprotocol(self, request: WebSocket) -> str | None:
        return pick_subprotocol(list(request["subprotocols"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's, with its refusals (a reason and a status) answered as JSON, and the
        answers given outside its flow (streams) sent as they are."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response: ASGIApp
        try:
            response = await self.run(request)
        except Answered as answered:
            response = answered.response
        except HTTPException as exc:
            reason = exc.reason
            if exc.status_code == 405 and request.method in ("PUT", "DELETE"):
                reason = _SINGLE_CONNECTION
            response = Refusal.of_status(exc.status_code, reason).response(_accept(request))
        except Refusal as refusal:
            response = refusal.response(_accept(request))
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        """A GET without a document, by text or by id, from a browser."""
        return super().should_render_graphql_ide(request) and not any(
            name in request.query_params for name in _DOCUMENT_IDS
        )

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """The request's parameters (schema/execution/pipeline.py's steps 2 and 3), as the planned
        path reads them: GET's query string, or a POSTed JSON object; those the planned path
        read already, or its refusal, when it handed the request over."""
        accept = request.headers.get("accept", "")
        media = answer_media_type(accept)
        if media is None:
            raise Refusal(
                "the answer is JSON: accept application/graphql-response+json or application/json",
                "NOT_ACCEPTABLE",
            )
        if request.method != "GET" and not json_media_type(request.content_type or ""):
            raise Refusal("send the request as application/json", "UNSUPPORTED_MEDIA_TYPE")
        assert isinstance(request, HeraldRequestAdapter)
        parameters = request.handed_over
        if parameters is None:
            data = (
                query_parameters(request.query_params)
                if request.method == "GET"
                else decode_json(await request.get_body())
            )
            parameters = request_parameters(data)
        elif isinstance(parameters, Refusal):
            raise parameters
        return HeraldRequestData(
            query=parameters.query,
            variables=parameters.variables,
            operation_name=parameters.operation_name,
            extensions=parameters.extensions,
            parameters=parameters,
            transport=self._stream_transport(accept),
            only_streams=media == STREAM,
        )

    def _stream_transport(self, accept: str) -> HTTPStreamTransport | None:
        """The stream the client accepts (among other types, maybe), if one is served."""
        for protocol in self.protocols:
            transport_class = self.stream_transport_classes_by_protocol.get(protocol)
            if transport_class is not None and (transport := transport_class()).accepts(accept):
                return transport
        return None

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        """Strawberry's, once the document a request names by id or hash is found (step 4);
        a stream when the client accepts one and the operation calls for it."""
        assert isinstance(request_data, HeraldRequestData)
        assert request_data.parameters is not None
        handoff = handoff_of_scope(request.scope)
        if handoff is not None and handoff.document is not None:
            document = handoff.document  # found already by the planned path
        else:
            runtime: Runtime = request.app.state.runtime
            document = await runtime.persisted.document(request_data.parameters, context.redis)
        request_data.query = document.query
        if document.remember is not None:
            request.scope[REMEMBER] = document.remember
        if request_data.transport is not None:
            operation = Operation(
                document.query,
                request_data.variables,
                request_data.operation_name,
                request_data.extensions,
                request_data.only_streams,
            )
            answer = await stream_answer(
                self, request, context, sub_response, operation, request_data.transport
            )
            if answer is not None:
                raise Answered(answer)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """The response the resolvers add headers to; its media type is the answer's."""
        response = await super().get_sub_response(request)
        response.media_type = response_media_type(request.headers.get("accept", ""))
        return response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Strawberry's, without `data` when the operation never ran (a request error).

        The errors leave their tracebacks here: a traceback's frames hold the request (its
        document among them) and the frame that caught the error holds the error, a cycle
        that only the cyclic garbage collector frees. During a flood of refused large
        documents it freed 115,000 objects at a time."""
        for error in result.errors or ():
            error.__traceback__ = None
            if error.original_error is not None:
                error.original_error.__traceback__ = None
        body = process_result(result)
        if result.data is None and is_request_error(body.get("errors")):
            del body["data"]
        return body

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The answer in its media type, with the status that media type gives it."""
        assert isinstance(response_data, dict)  # batches are refused with the parameters
        media = sub_response.media_type or JSON
        response = Response(
            self.encode_json(response_data),
            status_code=graphql_status(response_data, media),
            media_type=CONTENT_TYPES[media],
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime: Runtime = request.app.state.runtime
        if isinstance(request, WebSocket):
            # The connection's own context: its key is checked at connection_init, and
            # each operation then runs on a context of its own (operation_context).
            return _context(
                runtime, request, Response(), lambda s: RequestAuth(s, None, runtime.callers)
            )
        assert isinstance(response, Response)
        return self.http_context(request, response)

    def http_context(self, request: Request, response: Response) -> Context:
        """A request's context: its own session, loaders and cache, its caller's key."""
        runtime: Runtime = request.app.state.runtime
        authorization = request.headers.get("authorization")
        return _context(
            runtime, request, response, lambda s: RequestAuth(s, authorization, runtime.callers)
        )

    def operation_context(self, base: Context, hub: LiveHub) -> Context:
        """A fresh session, loaders and cache for one WebSocket operation."""
        runtime: Runtime = base.request.app.state.runtime
        context = _context(runtime, base.request, Response(), lambda _: base.auth)
        context.live = hub
        return context


def _context(
    runtime: Runtime,
    request: HTTPConnection,
    response: Response,
    auth: Callable[[SerializedSession], RequestAuth],
) -> Context:
    session = runtime.sessionmaker()
    return Context(
        request=request,
        response=response,
        settings=runtime.settings,
        session=session,
        redis=runtime.redis,
        loaders=request_loaders(session, runtime.settings),
        cache=request_cache(runtime.cache, runtime.settings),
        auth=auth(session),
        jobs=runtime.jobs,
    )


def _accept(request: Request) -> str:
    return request.headers.get("accept", "")
