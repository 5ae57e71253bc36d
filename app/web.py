"""The GraphQL HTTP view: typed per-request context and orjson encoding."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.runtime import Runtime
from loaders.registry import Loaders
from schema.context import Context


class HeraldGraphQL(GraphQL[Context, None]):
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
        )
