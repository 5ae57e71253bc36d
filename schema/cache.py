"""Caching as a property of a field: `Cached(namespace, ttl=..., when=...)` and invalidation.

How values survive Redis. A cached field's resolver keeps returning ordinary Strawberry
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

Keys: `cache:<namespace>:<schema version>:<Parent>.<field>:<parent id>[:<arguments digest>]`;
the parent id is `source.id` unless `key=` says otherwise. The schema version digests the
printed SDL, the Python classes and attributes behind its types and the codec's own
version, so a deploy that renames a type or adds a field (even a private one) reads none
of the values the previous code stored: they are left to expire. Only cache fields whose
answer depends on nothing but the parent and the arguments (not on the caller).

Permissions. A cached value is shared by every caller, so the permission check must run
before `Cached` looks anything up. Strawberry runs a field's extensions last-listed first,
so `extensions=[Cached(...), *viewer()]` checks first; `check_cache_permissions` refuses,
when the schema is built, a field listing them the other way round and a root field that
is cached without any permission.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
import strawberry
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.permission import PermissionExtension
from strawberry.types.base import StrawberryObjectDefinition, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.types.field import StrawberryField
from strawberry.types.nodes import SelectedField

from app.cache import MISS, Entry, NotCacheable, Scope, check_namespace, count_round_trips, ttl_for
from app.config import Settings

if TYPE_CHECKING:
    from schema.context import Context

logger = logging.getLogger(__name__)

Json = Any

# -- Codec --------------------------------------------------------------------------------

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
    the rebuilt object cannot answer them (the extension then recomputes instead).
    """
    if value is None or (
        isinstance(value, bool | int | float | str) and not isinstance(value, Enum)
    ):
        return value
    if isinstance(value, Enum):
        return {"$e": _ref(type(value)), "v": value.value}
    if isinstance(value, list | tuple):
        return [await encode(item, force=force, lazy=lazy) for item in value]
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
                forced, is_async = await _force(attribute)
                # The live object answers from the forced value too: one computation.
                setattr(value, name, _constant(forced, is_async))
                fields[name] = {"$thunk": await encode(forced), "async": is_async}
            else:
                fields[name] = await encode(attribute, force=force, lazy=lazy)
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
        return {"$map": {k: await encode(v, force=force, lazy=lazy) for k, v in value.items()}}
    raise TypeError(f"cannot cache a {type(value).__qualname__}")


def decode(tree: Json) -> Any:
    """Rebuild what `encode` stored; objects are made without running `__init__`."""
    if isinstance(tree, list):
        return [decode(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    if "$t" in tree:
        cls = _resolve(tree["$t"])
        obj: Any = object.__new__(cls)
        for name, raw in tree["f"].items():
            if isinstance(raw, dict) and "$thunk" in raw:
                setattr(obj, name, _constant(decode(raw["$thunk"]), raw["async"]))
            elif isinstance(raw, dict) and "$lazy" in raw:
                setattr(obj, name, _not_stored)
            else:
                setattr(obj, name, decode(raw))
        return obj
    if "$e" in tree:
        return _resolve(tree["$e"])(tree["v"])
    if "$dt" in tree:
        return datetime.fromisoformat(tree["$dt"])
    if "$d" in tree:
        return date.fromisoformat(tree["$d"])
    if "$dec" in tree:
        return Decimal(tree["$dec"])
    if "$uuid" in tree:
        return UUID(tree["$uuid"])
    return {k: decode(v) for k, v in tree["$map"].items()}


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


# -- Schema version and build-time checks -------------------------------------------------


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


class CacheOrderError(TypeError):
    """A cached field that could answer a caller its permission check would refuse."""


def check_cache_permissions(schema: strawberry.Schema) -> None:
    """Refuse fields whose cache lookup would run before (or without) their permission check.

    Strawberry wraps the resolver with each listed extension in turn, so the last one is
    the outermost and runs first: every PermissionExtension must come after `Cached`.
    Root fields hold no parent whose own check already ran, so a cached one needs a check.
    """
    graphql = schema._schema
    roots = {
        root.name
        for root in (graphql.query_type, graphql.mutation_type, graphql.subscription_type)
        if root is not None
    }
    for name, concrete in schema.schema_converter.type_map.items():
        definition = concrete.definition
        if not isinstance(definition, StrawberryObjectDefinition):
            continue
        for field in definition.fields:
            extensions = list(field.extensions)
            cached = [i for i, e in enumerate(extensions) if isinstance(e, Cached)]
            checks = [i for i, e in enumerate(extensions) if isinstance(e, PermissionExtension)]
            if not cached:
                continue
            where = f"{name}.{field.graphql_name or field.python_name}"
            if checks and min(checks) < max(cached):
                raise CacheOrderError(
                    f"{where}: list Cached before the permission extension "
                    "(extensions=[Cached(...), *viewer()]): the last listed runs first"
                )
            if not checks and name in roots:
                raise CacheOrderError(f"{where}: a cached root field needs a permission check")


# -- The field extension ------------------------------------------------------------------


def _parent_id(source: Any) -> object:
    if source is None:
        return "_"
    try:
        return source.id
    except AttributeError:
        raise TypeError(
            f"a cached field on {type(source).__qualname__} needs key=: its parent has no id"
        ) from None


def _selects(selections: list[Any], names: frozenset[str]) -> bool:
    """Whether the field's own selection (through fragments, not sub-fields) has `names`."""
    for selection in selections:
        name = getattr(selection, "name", None)
        if isinstance(selection, SelectedField):
            if name in names:
                return True
        elif _selects(selection.selections, names):
            return True
    return False


class Cached(FieldExtension):
    """Serve a field from Redis; TTL from Settings; `when(parent, arguments)` False
    bypasses the cache (a field whose plain form costs less than a cache hit).

    `scope(parent)` adds that entity's generation, so `Scope(namespace, id)` invalidates
    only its values (one campaign's stats) while a namespace bump still clears all.
    `depends_on` names other namespaces whose bumps also invalidate the value (the
    dashboard counts categories too); all generations still come in the one MGET.
    """

    def __init__(
        self,
        namespace: str,
        *,
        ttl: Callable[[Settings], int] | None = None,
        key: Callable[[Any], object] | None = None,
        scope: Callable[[Any], object] | None = None,
        when: Callable[[Any, dict[str, Any]], bool] | None = None,
        depends_on: tuple[str, ...] = (),
        thunk_fields: frozenset[str] = frozenset({"totalCount"}),
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.thunk_fields = thunk_fields
        self.depends_on = tuple(check_namespace(other) for other in depends_on)
        self.ttl = ttl or (lambda settings: ttl_for(settings, namespace))
        self.key = key or _parent_id
        self.scope = scope
        self.when = when
        self.field_name = "?"
        self._reported = False

    def apply(self, field: StrawberryField) -> None:
        self.field_name = field.python_name

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        async def call() -> Any:
            result = next_(source, info, **kwargs)
            return await result if inspect.isawaitable(result) else result

        context: Context = info.context
        cache = context.cache
        if self.when is not None and not self.when(source, kwargs):
            return await call()
        version = schema_version(info.schema)
        name = f"{version}:{info.path.typename}.{info.field_name}:{self.key(source)}"
        if kwargs:
            name += f":{arguments_digest(kwargs)}"
        scope = self.scope(source) if self.scope is not None else None
        ttl = self.ttl(cache.service.settings)
        entry = Entry.of(self.namespace, name, ttl, scope, self.depends_on)

        # Lazy parts (a Connection's count) are stored only when this request asks for them.
        force = bool(self.thunk_fields) and any(
            _selects(f.selections, self.thunk_fields) for f in info.selected_fields
        )
        # A value stored without the lazy part this request wants is recomputed (a miss).
        value, stamp = await cache.lookup(entry, (lambda v: not v["lazy"]) if force else None)
        if value is not MISS:
            return decode(value["v"])
        if stamp is None:  # Redis unavailable: answer from the database, store nothing
            return await call()
        live: list[Any] = []

        async def compute() -> Json:
            result = await call()
            live.append(result)
            lazy: list[str] = []
            try:
                tree = await encode(result, force=force, lazy=lazy)
            except TypeError as exc:
                self._report(info, exc)
                raise NotCacheable(result) from exc
            return {"lazy": bool(lazy), "v": tree}

        try:
            value, _ = await cache.fill(entry, stamp, compute)
        except NotCacheable as exc:
            return exc.value
        if live:
            return live[0]
        # Joined another request's fill (or found its value): rebuild our own objects.
        if force and value["lazy"]:
            return await call()
        return decode(value["v"])

    def _report(self, info: strawberry.Info, exc: TypeError) -> None:
        info.context.cache.service.metrics[self.namespace].error()
        if not self._reported:
            self._reported = True
            logger.error("%s.%s is not cacheable: %s", info.path.typename, self.field_name, exc)


# -- Invalidation helpers for mutations ---------------------------------------------------


def invalidate_after_commit(context: Context, *targets: str | Scope) -> None:
    """Bump these generations once the request's transaction commits (dropped on rollback)."""
    context.cache.invalidate_after_commit(context.on_commit, *targets)


def contacts_changed(context: Context, *, deleted: bool = False) -> None:
    """Contact create/update/delete/import: global stats and contact counts and lists.

    Deleting contacts cascades to their messages, so every campaign's stats go too.
    """
    invalidate_after_commit(context, "stats", "contacts", *(("campaigns",) if deleted else ()))


def categories_changed(context: Context, *, membership: bool = False) -> None:
    """Category create/update/delete; `membership` when contacts joined or left one."""
    invalidate_after_commit(context, "categories", *(("contacts",) if membership else ()))


def campaign_changed(context: Context) -> None:
    """A campaign's own row changed: lists, every campaign's stats (namespace), global stats."""
    invalidate_after_commit(context, "campaigns", "stats")


# -- Round trips per request --------------------------------------------------------------


class RedisRoundTrips(SchemaExtension):
    """Counts the Redis round trips of a request; reported with `expose_sql_count`."""

    trips: int = 0

    async def on_operation(self) -> AsyncIterator[None]:
        with count_round_trips() as counter:
            yield
        self.trips = counter.value

    def get_results(self) -> dict[str, object]:
        context: Context = self.execution_context.context
        if context.settings.expose_sql_count:
            return {"redisRoundTrips": self.trips}
        return {}


__all__ = [
    "CacheOrderError",
    "Cached",
    "RedisRoundTrips",
    "Scope",
    "campaign_changed",
    "categories_changed",
    "check_cache_permissions",
    "contacts_changed",
    "decode",
    "encode",
    "invalidate_after_commit",
    "schema_version",
]
