"""`node(id:)` and `nodes(ids:)`: any object by its global id, through the request's loaders.

An id that names nothing (unknown, malformed, of a type that is no node, or the numeric
key alone, which names no type) answers null, as Relay expects; a type the caller may not
read (API keys, for a non-admin) answers FORBIDDEN, as its own query does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from app.ids import parse_key
from schema.common.ids import decode
from schema.common.node import Node
from schema.common.pagination import BadInputError
from schema.common.selection import selects_on_value
from schema.context import Info
from schema.permissions import IsAdmin, viewer
from schema.senders.types import SenderNumberType
from schema.templates.types import template_key


@dataclass(frozen=True)
class _Kind:
    """How one type's objects are found: its key from the id's key text (None: names none),
    the objects of many keys (None where there is none: one statement for all), and the
    permission its own query needs beyond a viewer's."""

    key: Callable[[str], Any]
    load: Callable[[Info, list[Any]], Awaitable[Sequence[Any]]]
    permission: BasePermission | None = None


async def _messages(info: Info, keys: list[int]) -> Sequence[Any]:
    """Messages with their contacts (one statement) and, when selected, their interactions
    (one more): a page's messages have them too."""
    found = await info.context.loaders.message_by_id.load_many(keys)
    if selects_on_value(info, "interactions"):
        await info.context.loaders.messages.add_interactions([m for m in found if m is not None])
    return found


async def _sender_numbers(info: Info, keys: list[int]) -> Sequence[Any]:
    found = await info.context.loaders.sender_number_by_id.load_many(keys)
    return [None if number is None else SenderNumberType.of(number) for number in found]


KINDS: dict[str, _Kind] = {
    "Campaign": _Kind(parse_key, lambda info, k: info.context.loaders.campaign_by_id.load_many(k)),
    "Category": _Kind(parse_key, lambda info, k: info.context.loaders.category_by_id.load_many(k)),
    "Contact": _Kind(parse_key, lambda info, k: info.context.loaders.contact_by_id.load_many(k)),
    "Message": _Kind(parse_key, _messages),
    "Interaction": _Kind(
        parse_key, lambda info, k: info.context.loaders.interaction_by_id.load_many(k)
    ),
    "SenderNumber": _Kind(parse_key, _sender_numbers),
    "Template": _Kind(
        template_key, lambda info, k: info.context.loaders.template_by_name_language.load_many(k)
    ),
    "ApiKey": _Kind(
        parse_key, lambda info, k: info.context.loaders.api_key_by_id.load_many(k), IsAdmin()
    ),
}


async def _refusal(kind: _Kind, info: Info) -> GraphQLError | None:
    """FORBIDDEN when the caller may not read this type, as its own query says."""
    if kind.permission is None:
        return None
    try:
        allowed = kind.permission.has_permission(None, info)  # True, or raises
        if inspect.isawaitable(allowed):
            await allowed
    except GraphQLError as refused:
        return refused
    return None


async def _resolve(info: Info, ids: Sequence[str]) -> list[Any]:
    """The object of each id (None: none; an error: refused), one load per type."""
    wanted: dict[str, dict[Any, list[int]]] = {}  # type → key → positions in `ids`
    for position, value in enumerate(ids):
        found = decode(str(value))
        if found is None or found[0] not in KINDS:
            continue
        name, text = found
        key = KINDS[name].key(text)
        if key is not None:
            wanted.setdefault(name, {}).setdefault(key, []).append(position)
    results: list[Any] = [None] * len(ids)
    for name, positions in wanted.items():
        kind = KINDS[name]
        refused = await _refusal(kind, info)
        objects = [refused] * len(positions) if refused else await kind.load(info, [*positions])
        for found_object, places in zip(objects, positions.values(), strict=True):
            for position in places:
                results[position] = found_object
    return results


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="The object of a global id; null when it names none (unknown, "
        "malformed, or another kind of id).",
        extensions=viewer(),
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        [found] = await _resolve(info, [id])
        if isinstance(found, GraphQLError):
            raise found
        return found

    @strawberry.field(
        description="`node` of each id, in their order: one statement per type, whatever the "
        "number of ids (at most the page size's maximum).",
        extensions=viewer(),
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        limit = info.context.settings.page_size_max
        if len(ids) > limit:
            raise BadInputError(f"ids must hold at most {limit} ids, got {len(ids)}", "ids")
        # A refused one is an error in the list: null there, with its error and path.
        return await _resolve(info, ids)
