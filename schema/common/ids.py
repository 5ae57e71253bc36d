"""Global object ids (Relay's convention): base64 of `Type:key`, unique across the schema.

Every `id` the API answers is one, so a client cache never takes Campaign 1 for Contact 1;
`databaseId` keeps the numeric key. Id arguments take a global id of their type or, as
before global ids, the numeric key itself (`key_of`, `parse_id`). The key inside is read
by `app.ids.parse_key`, as every key from outside is.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Protocol, cast

import strawberry

from app import errors
from app.ids import parse_key
from schema.common.pagination import BadInputError

_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LONGEST = 1024  # base64 of the longest id Herald makes: a template's (512-byte name)
# Ids remembered per type (about 150 bytes each): a 1,000-message page and its contacts fit.
MEMO_MAX = 1 << 14


class Encoder(Protocol):
    """A type's `encoder`: the global id of a key, the ids it remembers, and `remember`,
    which encodes a key the memo lacks and keeps it there (its caller checks the memo first
    and bounds it: `if len(memo) >= limit: memo.clear()`, once per page)."""

    memo: dict[int, strawberry.ID]
    remember: Callable[[int], strawberry.ID]
    limit: int

    def __call__(self, key: int) -> strawberry.ID: ...


def encoder(type_name: str) -> Encoder:
    """The global ids of `type_name`'s keys. Each is remembered once encoded (about
    `MEMO_MAX`, then they start over): a page read again costs a dict lookup per id, a page
    read for the first time one encoding each (`python -m bench.codegen` measures both).
    Row builders read `memo` first, without a call (loaders/base.py)."""
    pattern = f"{type_name}:%d".encode()
    b2a = binascii.b2a_base64
    memo: dict[int, str] = {}  # cleared, never replaced: builders hold it

    def remember(key: int) -> str:
        found = memo[key] = b2a(pattern % key, newline=False).decode()
        return found

    def encode(key: int) -> str:
        found = memo.get(key)
        if found is None:
            if len(memo) >= MEMO_MAX:
                memo.clear()
            found = remember(key)
        return found

    encode.memo, encode.remember, encode.limit = memo, remember, MEMO_MAX  # type: ignore[attr-defined]
    return cast("Encoder", encode)  # ids typed as strawberry.ID without a call each


def global_id(type_name: str, key: int | str) -> strawberry.ID:
    """The global id of `type_name`'s object `key` (a number, or a text key: a template's)."""
    text = f"{type_name}:{key}".encode()
    return strawberry.ID(binascii.b2a_base64(text, newline=False).decode())


def decode(value: str) -> tuple[str, str] | None:
    """(type name, key text) of a global id; None for anything that is not one."""
    if len(value) > _LONGEST:
        return None
    try:  # strict: standard alphabet, padded, nothing around it
        text = binascii.a2b_base64(value, strict_mode=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 inside
        return None
    type_name, colon, key = text.partition(":")
    if not colon or not key or not _TYPE.fullmatch(type_name):
        return None
    return type_name, key


def key_of(value: str, type_name: str, argument: str) -> int | None:
    """The key of `type_name` an id argument names: by its global id or by the number
    itself. None for a global id of another type (unknown here, like an unknown key);
    anything else is a client's mistake (BAD_USER_INPUT)."""
    text = str(value)
    key = parse_key(text)
    if key is not None:
        return key
    found = decode(text)
    if found is not None:
        if found[0] != type_name:
            return None
        key = parse_key(found[1])
        if key is not None:
            return key
    raise BadInputError(
        f"{argument} must be a {type_name} id (global, or numeric), got {text!r}", argument
    )


def parse_id(value: str, type_name: str, argument: str) -> int:
    """`key_of` for a mutation's argument: a global id of another type is `NotFound`, the
    typed error an unknown key of `type_name` gets."""
    key = key_of(value, type_name, argument)
    if key is None:
        raise errors.NotFound(type_name, str(value))
    return key


def reported(entity: str, id: str) -> strawberry.ID:
    """The id a typed error reports: the global id of `entity`'s key, or the id as given
    when it named no key of it (a global id of another type)."""
    key = parse_key(id)
    return global_id(entity, key) if key is not None else strawberry.ID(id)
