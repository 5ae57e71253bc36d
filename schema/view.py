"""The GraphQL view over HTTP and WebSocket: typed context, orjson encoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData

from app.api_keys.auth import RequestAuth
from app.db import SerializedSession
from app.graphiql import PAGE_HEADERS, is_loopback, render_graphiql
from app.live import LiveHub
from app.runtime import Runtime
from schema.context import Context
from schema.fanout import SharedStreams
from schema.pipeline import json_media_type
from schema.request import request_cache, request_loaders
from schema.websocket import LiveTransportHandler, TextWebSocketAdapter


class HeraldGraphQL(GraphQL[Context, None]):
    # Shown in the IDE's Headers tab (the dev key); only set when bound to loopback.
    graphiql_default_headers: dict[str, str] | None = None
    # graphql-transport-ws with the API key in connection_init (schema/websocket.py).
    graphql_transport_ws_handler_class = LiveTransportHandler
    websocket_adapter_class = TextWebSocketAdapter
    shared_streams: SharedStreams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_streams = SharedStreams()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """The local GraphiQL page (app/graphiql.py): its assets come from Herald, not a CDN.

        The page needs no key to fetch, so the key goes only to callers on this machine.
        """
        client = request.client.host if request.client else None
        page = render_graphiql(
            root_path=request.scope.get("root_path", ""),
            default_headers=self.graphiql_default_headers if is_loopback(client) else None,
        )
        # The page may carry default headers (credentials): never store it in a cache.
        return HTMLResponse(page, headers={"Cache-Control": "no-store", **PAGE_HEADERS})

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's, behind the media type check the planned path makes too."""
        if request.method == "POST" and not json_media_type(request.content_type or ""):
            raise HTTPException(400, "Unsupported content type")  # as Strawberry words it
        return await super().parse_http_body(request)

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
