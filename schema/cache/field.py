"""Caching as a property of a field: the `Cached` extension, and the build-time check
that a cached field's permission runs before its cache.

Keys: `cache:<namespace>:<schema version>:<Parent>.<field>:<parent id>[:<arguments digest>]`;
the parent id is its `database_id` (else `source.id`) unless `key=` says otherwise; the
schema version is schema/cache/codec.py's. Only cache fields whose answer depends on nothing
but the parent and the arguments (not on the caller).

Permissions. A cached value is shared by every caller, so the permission check must run
before `Cached` looks anything up. Strawberry runs a field's extensions last-listed first,
so `extensions=[Cached(...), *viewer()]` checks first; `check_cache_permissions` refuses,
when the schema is built, a field listing them the other way round and a root field that
is cached without any permission.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField
from strawberry.types.nodes import SelectedField

from app.cache import MISS, Entry, NotCacheable, check_namespace, ttl_for
from app.compat import graphql_schema
from app.config import Settings
from schema.cache.codec import Json, arguments_digest, decode, encode, schema_version
from schema.common.selection import per_field_node

if TYPE_CHECKING:
    from schema.context import Context

# The package's name, as before it was split: log configuration and filters keep working.
logger = logging.getLogger(__package__)


class CacheOrderError(TypeError):
    """A cached field that could answer a caller its permission check would refuse."""


def check_cache_permissions(schema: strawberry.Schema) -> None:
    """Refuse fields whose cache lookup would run before (or without) their permission check.

    Strawberry wraps the resolver with each listed extension in turn, so the last one is
    the outermost and runs first: every PermissionExtension must come after `Cached`.
    Root fields hold no parent whose own check already ran, so a cached one needs a check.
    """
    graphql = graphql_schema(schema)
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


def _parent_id(source: Any) -> object:
    if source is None:
        return "_"
    key = getattr(source, "database_id", None)  # a node's numeric key, not its global id
    if key is not None:
        return key
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
        self._thunks = f"selects {sorted(thunk_fields)}"  # its look-ahead's key
        self.depends_on = tuple(check_namespace(other) for other in depends_on)
        self.ttl = ttl or (lambda settings: ttl_for(settings, namespace))
        self.key = key or _parent_id
        self.scope = scope
        self.when = when
        self.field_name = "?"
        self._reported = False

    def apply(self, field: StrawberryField) -> None:
        self.field_name = field.python_name

    def _forces(self, info: strawberry.Info) -> bool:
        """Whether the field's selection asks for a lazy part: names only, so once per set
        of field nodes (`per_field_node`)."""
        return any(_selects(f.selections, self.thunk_fields) for f in info.selected_fields)

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
        force = bool(self.thunk_fields) and per_field_node(info, self._thunks, self._forces)
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
