"""A minimal graphql-transport-ws client over the `websockets` library, for the tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


class GqlSocket:
    """One connection: `subscribe` sends an operation, `receive` the next message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message; protocol pings are answered on the way."""
        while True:
            message: dict[str, Any] = json.loads(await self.ws.recv())
            if message["type"] != "ping":
                return message
            await self.send({"type": "pong"})

    async def init(self, key: str | None) -> dict[str, Any]:
        payload = {} if key is None else {"Authorization": f"Bearer {key}"}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, op_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def events(self, op_id: str) -> AsyncIterator[dict[str, Any]]:
        """Messages of one operation until its `complete` or `error` (other ids skipped)."""
        while True:
            message = await self.receive()
            if message.get("id") != op_id:
                continue
            if message["type"] == "complete":
                return
            yield message
            if message["type"] == "error":
                return


@asynccontextmanager
async def gql_socket(http_url: str) -> AsyncIterator[GqlSocket]:
    async with connect(ws_url(http_url), subprotocols=[PROTOCOL], open_timeout=10) as ws:  # type: ignore[list-item]
        yield GqlSocket(ws)
