"""How a cached value survives Redis, and what its key is made of (arguments, schema version).

A cached field's resolver keeps returning ordinary Strawberry
objects. On a miss the extension encodes the result into a JSON tree that names each
object's class (`{"$t": "module:Class", "f": {attribute: value}}`, enums, datetimes and
dates tagged the same way) and stores it; on a hit it rebuilds the same classes without
calling `__init__`. Nested fields that have resolvers (`Category.contactCount`, `edges`)
are not stored: they run again on the rebuilt object, and may be cached themselves.

Private attributes holding a zero-argument callable (the lazy `totalCount` of a
`Connection`) are forced only when the request selects one of `thunk_fields` directly on
the cached field, and then come back as a callable returning the stored result: a cached
page answers `totalCount` from the cache (one count statement per miss, none per hit).
A value stored without them is recomputed by the first request that wants them. Thunks
deeper inside a stored value are not supported (they raise when asked). Anything else
that is not JSON-able (an ORM object, a session) makes the field uncacheable: it still
answers, an error is logged once and counted.

The schema version digests the printed SDL, the Python classes and attributes behind its
types and the codec's own version, so a deploy that renames a type or adds a field (even a
private one) reads none of the values the previous code stored: they are left to expire.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
import strawberry
from strawberry.types.base import StrawberryObjectDefinition, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition

Json = Any


# Bump when `encode`'s layout changes: stored values then belong to another schema version.
CODEC_VERSION = 1

_classes: dict[str, type] = {}


def _ref(cls: type) -> str:
    ref = f"{cls.__module__}:{cls.__qualname__}"
    _classes.setdefault(ref, cls)
    return ref


def _resolve(ref: str) -> type:
    """Only Strawberry object types and enums can be named by a cached value."""
    cls = _classes.get(ref)
    if cls is None:
        module, _, qualname = ref.partition(":")
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if not isinstance(found, type) or not (
            has_object_definition(found) or issubclass(found, Enum)
        ):
            raise TypeError(f"{ref} is not a Strawberry type or an enum")
        cls = _classes.setdefault(ref, found)
    return cls


def _constant(value: Any, is_async: bool) -> Callable[[], Any]:
    async def thunk() -> Any:
        return value

    return thunk if is_async else lambda: value


def _not_stored() -> Any:
    raise RuntimeError("this value was cached without its lazy part; it cannot answer it")


async def _force(thunk: Callable[[], Any]) -> tuple[Any, bool]:
    result = thunk()
    if inspect.isawaitable(result):
        return await result, True
    return result, False


async def encode(value: Any, *, force: bool = True, lazy: list[str] | None = None) -> Json:
    """A JSON tree from a resolver's result; TypeError when something cannot be stored.

    Thunks are forced only with `force`; otherwise their names are appended to `lazy` and
    the rebuilt object cannot answer them (the extension then recomputes instead). The tree
    is built in one synchronous walk (a page's leaves are hundreds of values); only the
    thunks it met are awaited, after it, and their places in the tree filled.
    """
    thunks: list[tuple[Any, str, Callable[[], Any], dict[str, Json]]] = []
    tree = _encode(value, force, lazy, thunks)
    for owner, name, thunk, place in thunks:
        forced, is_async = await _force(thunk)
        # The live object answers from the forced value too: one computation.
        setattr(owner, name, _constant(forced, is_async))
        place["$thunk"] = await encode(forced)
        place["async"] = is_async
    return tree


def _encode(
    value: Any,
    force: bool,
    lazy: list[str] | None,
    thunks: list[tuple[Any, str, Callable[[], Any], dict[str, Json]]],
) -> Json:
    if value is None or (
        isinstance(value, bool | int | float | str) and not isinstance(value, Enum)
    ):
        return value
    if isinstance(value, Enum):
        return {"$e": _ref(type(value)), "v": value.value}
    if isinstance(value, list | tuple):
        return [_encode(item, force, lazy, thunks) for item in value]
    if has_object_definition(type(value)):
        fields: dict[str, Json] = {}
        for name, attribute in vars(value).items():
            if name.startswith("__"):
                continue  # e.g. __orig_class__ set by instantiating Connection[X](...)
            if callable(attribute) and not isinstance(attribute, type):
                if not force:
                    if lazy is not None:
                        lazy.append(name)
                    fields[name] = {"$lazy": True}
                    continue
                place: dict[str, Json] = {}  # filled once forced (`encode`)
                fields[name] = place
                thunks.append((value, name, attribute, place))
            else:
                fields[name] = _encode(attribute, force, lazy, thunks)
        return {"$t": _ref(type(value)), "f": fields}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$map": {k: _encode(v, force, lazy, thunks) for k, v in value.items()}}
    raise TypeError(f"cannot cache a {type(value).__qualname__}")


def decode(tree: Json) -> Any:
    """Rebuild what `encode` stored; objects are made without running `__init__`.

    Every object `encode` writes starts with its tag, which picks the decoder: a cache hit
    rebuilds a page's hundreds of values, so no value tries each tag in turn.
    """
    if isinstance(tree, list):
        return [decode(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    return _DECODERS[next(iter(tree))](tree)


def _object(tree: dict[str, Json]) -> Any:
    obj: Any = object.__new__(_resolve(tree["$t"]))
    attributes = vars(obj)
    for name, raw in tree["f"].items():
        attributes[name] = decode(raw)
    return obj


def _enum(tree: dict[str, Json]) -> Enum:
    return _resolve(tree["$e"])(tree["v"])


_DECODERS: dict[str, Callable[[dict[str, Json]], Any]] = {
    "$t": _object,
    "$e": _enum,
    "$dt": lambda tree: datetime.fromisoformat(tree["$dt"]),
    "$d": lambda tree: date.fromisoformat(tree["$d"]),
    "$dec": lambda tree: Decimal(tree["$dec"]),
    "$uuid": lambda tree: UUID(tree["$uuid"]),
    "$map": lambda tree: {k: decode(v) for k, v in tree["$map"].items()},
    # An object's thunk: forced when stored, or left out (`_not_stored`).
    "$thunk": lambda tree: _constant(decode(tree["$thunk"]), tree["async"]),
    "$lazy": lambda _: _not_stored,
}


def _argument(value: Any) -> Any:
    if value is strawberry.UNSET:
        return "$unset"
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot key a cache entry on a {type(value).__qualname__}")


def arguments_digest(kwargs: dict[str, Any]) -> str:
    """Stable for equal arguments: input objects are dataclasses, keys sorted."""
    raw = orjson.dumps(kwargs, default=_argument, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


@functools.cache
def schema_version(schema: strawberry.Schema) -> str:
    """12 hex digits naming what a stored value depends on: SDL, Python types, codec."""
    shapes: list[str] = []
    for name, concrete in sorted(schema.schema_converter.type_map.items()):
        definition = concrete.definition
        if isinstance(definition, StrawberryObjectDefinition):
            origin = definition.origin
            attributes = (
                [f.name for f in dataclasses.fields(origin)]
                if dataclasses.is_dataclass(origin)
                else []
            )
            shapes.append(f"{name}={_ref(origin)}({','.join(attributes)})")
        elif isinstance(definition, StrawberryEnumDefinition):
            members = ",".join(f"{v.name}={v.value!r}" for v in definition.values)
            shapes.append(f"{name}={_ref(definition.wrapped_cls)}({members})")
    digest = hashlib.blake2b(digest_size=6)
    for part in (f"codec {CODEC_VERSION}", schema.as_str(), *shapes):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
