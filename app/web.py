"""The GraphQL HTTP view: typed per-request context and orjson encoding."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.api_keys.auth import RequestAuth
from app.graphiql import is_loopback, render_graphiql
from app.runtime import Runtime
from loaders.registry import Loaders
from schema.context import Context


class HeraldGraphQL(GraphQL[Context, None]):
    # Shown in the IDE's Headers tab (the dev key); only set when bound to loopback.
    graphiql_default_headers: dict[str, str] | None = None

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
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        assert isinstance(response, Response)
        runtime: Runtime = request.app.state.runtime
        session = runtime.sessionmaker()
        return Context(
            request=request,
            response=response,
            settings=runtime.settings,
            session=session,
            redis=runtime.redis,
            loaders=Loaders(session, naive=runtime.settings.naive_resolvers),
            cache=runtime.cache.request(),
            auth=RequestAuth(session, request.headers.get("authorization"), runtime.callers),
        )
