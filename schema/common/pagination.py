"""Relay-style connections with opaque keyset cursors (newest first, by id)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from graphql import GraphQLError

from app.config import Settings
from app.db.pagination import Page
from app.ids import parse_key
from schema.common.scalars import BigInt

NodeT = TypeVar("NodeT")


class BadInputError(GraphQLError):
    """A client mistake in a query's arguments; reported with code BAD_USER_INPUT."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", "argument": argument})


def encode_cursor(id: int | str) -> str:
    return base64.urlsafe_b64encode(f"id:{id}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    else:
        key = parse_key(value) if kind == "id" else None
        if key is not None:
            return key
    raise BadInputError(f"malformed cursor {cursor!r}", "after")


def page_args(settings: Settings, first: int | None, after: str | None) -> Page:
    """Validate `first`/`after` into a keyset page (default 20, at most the configured max)."""
    size = settings.page_size_default if first is None else first
    if not 0 <= size <= settings.page_size_max:
        raise BadInputError(
            f"first must be between 0 and {settings.page_size_max}, got {size}", "first"
        )
    return Page(limit=size, before_id=None if after is None else decode_cursor(after))


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


class _PageInfo(PageInfo):
    """A page's info whose cursors are encoded only when read (most queries ask for none)."""

    def __init__(
        self, has_next_page: bool, has_previous_page: bool, first: str | None, last: str | None
    ) -> None:
        self.has_next_page = has_next_page
        self.has_previous_page = has_previous_page
        self._first = first
        self._last = last

    @property
    def start_cursor(self) -> str | None:  # type: ignore[override]
        return None if self._first is None else encode_cursor(self._first)

    @property
    def end_cursor(self) -> str | None:  # type: ignore[override]
        return None if self._last is None else encode_cursor(self._last)


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    """A page of nodes; `totalCount` costs one extra statement and only runs when asked for."""

    nodes: list[NodeT]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def edges(self) -> list[Edge[NodeT]]:
        nodes = self.nodes
        return [Edge(cursor=encode_cursor(node.database_id), node=node) for node in nodes]  # type: ignore[attr-defined]

    # A BigInt: all messages, counted from the counters, pass Int's 2^31 - 1 with their keys.
    @strawberry.field(graphql_type=BigInt)
    async def total_count(self) -> int:
        return await self._count()

    @classmethod
    def of(
        cls,
        rows: Sequence[NodeT],
        page: Page,
        count: Callable[[], Awaitable[int]],
    ) -> Connection[NodeT]:
        """Build from `limit + 1` fetched nodes: the extra one only signals a next page."""
        nodes = list(rows[: page.limit])
        return cls(
            nodes=nodes,
            page_info=_PageInfo(
                len(rows) > page.limit,
                page.before_id is not None,
                nodes[0].database_id if nodes else None,  # type: ignore[attr-defined]
                nodes[-1].database_id if nodes else None,  # type: ignore[attr-defined]
            ),
            _count=count,
        )

    @classmethod
    def empty(cls, page: Page) -> Connection[NodeT]:
        """No nodes (a filter naming another type's id, which matches nothing)."""
        return cls.of([], page, _zero)


async def _zero() -> int:
    return 0
