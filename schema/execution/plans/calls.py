"""How a plan calls fields and awaits them: resolvers, permission-guarded and cached
resolvers, batched fields, and the waves in which awaitable results are gathered."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableNode,
)
from graphql.execution import Executor, get_argument_values
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList
from graphql.pyutils import Path, gather_with_cancel
from strawberry import ID
from strawberry.permission import PermissionExtension
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryOptional
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.types.field import StrawberryField

from app.compat import new_info
from schema.cache import Cached
from schema.execution.fields import strawberry_field

F = TypeVar("F", bound=Callable[..., Any])
Plan = Callable[[Any, "Run"], dict[str, Any]]


class Bail(Exception):
    """This request leaves the plan: the standard path answers it, errors and all."""


# -- Per-request state ---------------------------------------------------------------------


class Run:
    """One execution of a plan: the graphql-core executor built for the request (variables,
    fragments, context, resolve infos), awaitables waiting for the next wave, and the
    arguments of each field node, coerced once per request."""

    __slots__ = ("_arguments", "batches", "executor", "pending")

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        # a resolver's awaitable (and where its answer goes), or a batched field's call
        self.pending: list[Any] = []
        self.batches: dict[BatchField, _BatchCall] = {}
        self._arguments: dict[int, dict[str, Any]] = {}

    def arguments(self, field_def: GraphQLField, details: FieldDetails) -> dict[str, Any]:
        found = self._arguments.get(id(details.node))
        if found is None:
            executor = self.executor
            found = self._arguments[id(details.node)] = (
                get_argument_values(
                    field_def,
                    details.node,
                    executor.variable_values,
                    details.fragment_variable_values,
                    executor.hide_suggestions,
                )
                if field_def.args or details.node.arguments
                else {}
            )
        return found


def resolver(
    field_def: GraphQLField,
    details: FieldDetailsList,
    parent_type: GraphQLObjectType,
    complete: Callable[..., Any],
    strawberry_schema: Any,
) -> Callable[..., Any]:
    """A field with a resolver, called as graphql-core's `execute_field` calls it."""
    resolve = _direct_call(field_def, strawberry_schema) or field_def.resolve
    nodes = [detail.node for detail in details]
    arguments = arguments_of(field_def, details[0])
    parent_name = parent_type.name

    def run_field(
        source: Any, into: dict[str, Any], key: str, parent: Path | None, run: Run
    ) -> Any:
        path = Path(parent, key, parent_name)
        executor = run.executor
        info = executor.build_resolve_info(field_def, nodes, parent_type, path)
        result = resolve(source, info, **arguments(run))  # type: ignore[misc]
        if executor.is_awaitable(result):
            run.pending.append((result, into, key, complete, path))
            return None  # a placeholder keeping the key's place in the response
        return complete(result, path, run)

    return run_field


def arguments_of(field_def: GraphQLField, details: FieldDetails) -> Callable[[Run], dict[str, Any]]:
    """The field node's arguments in a request (`run`): coerced once per request, or once
    for good when they are literals (no variable: the same in every request of the plan)."""
    node = details.node
    if not all(_literal(argument.value) for argument in node.arguments or ()):
        return lambda run: run.arguments(field_def, details)
    constant: list[dict[str, Any]] = []

    def literal(run: Run) -> dict[str, Any]:
        if not constant:
            constant.append(run.arguments(field_def, details))  # only once coerced without error
        return constant[0]

    return literal


def _literal(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return False
    if isinstance(value, ListValueNode):
        return all(_literal(item) for item in value.values)
    if isinstance(value, ObjectValueNode):
        return all(_literal(field.value) for field in value.fields)
    return True


def _direct_call(field_def: GraphQLField, strawberry_schema: Any) -> Callable[..., Any] | None:
    """Strawberry's resolver wrapper for the common resolver fields, those whose only
    extensions are permission checks and a `Cached` listed before them: the same argument
    conversion, checks, cache and call, in one coroutine instead of a chain of partials.
    A refused check raises, and the request leaves the plan. None for any other field (its
    own wrapper runs)."""
    definition = strawberry_field(field_def)
    if definition is None or definition.base_resolver is None:
        return None
    extensions = list(definition.extensions)
    cached = extensions.pop(0) if extensions and isinstance(extensions[0], Cached) else None
    if not all(isinstance(e, PermissionExtension) and not e.fail_silently for e in extensions):
        return None
    if strawberry_schema.exception_handlers:  # they may turn an error into a result
        return None
    checks = [permission for e in extensions for permission in e.permissions]  # type: ignore[attr-defined]
    info_class = strawberry_schema.config.info_class
    convert = arguments_converter(definition, strawberry_schema)
    get_result = definition.get_result
    base = definition.base_resolver
    positional = base.self_parameter is not None
    # get_arguments' parameters: the parent and root given by name, the info by its own.
    sources = [p.name for p in (base.parent_parameter, base.root_parameter) if p is not None]
    info_name = base.info_parameter.name if base.info_parameter is not None else None

    async def call(source: Any, info: Any, **raw: Any) -> Any:
        strawberry_info = new_info(info_class, info, definition)
        kwargs = convert(raw, strawberry_info)
        for name in sources:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = strawberry_info
        # Strawberry hands extensions the arguments without an `info` (put back below).
        requested = kwargs.pop("info", None) is not None
        for permission in checks:
            if await permission.has_permission(source, strawberry_info, **kwargs) is not True:
                raise Bail
        args = [source] if positional else []

        def resolve(source: Any, info: Any, **kwargs: Any) -> Any:
            if requested:
                kwargs["info"] = info
            return get_result(source, info, args, kwargs)

        if cached is not None:
            return await cached.resolve_async(resolve, source, strawberry_info, **kwargs)
        result = resolve(source, strawberry_info, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return call


def arguments_converter(
    definition: StrawberryField, strawberry_schema: Any
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Strawberry's conversion of a field's arguments, as a function (raw arguments, info)
    → a new dict of keyword arguments. When every argument is a scalar or an enum (values
    that cannot change), a conversion is remembered per raw values: a page's `first` and
    `status` are converted once, not on every request."""
    arguments = definition.arguments
    registry = strawberry_schema.schema_converter.scalar_registry
    config = strawberry_schema.config

    def convert(raw: dict[str, Any], info: Any) -> dict[str, Any]:
        return convert_arguments(raw, arguments, scalar_registry=registry, config=config, info=info)

    if not all(_immutable(argument.type) for argument in arguments):
        return convert
    memo: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    def remembered(raw: dict[str, Any], info: Any) -> dict[str, Any]:
        key = tuple(raw.items())
        try:
            found = memo.get(key)
        except TypeError:  # a value that is no key (a custom scalar's): converted each time
            return convert(raw, info)
        if found is None:
            found = convert(raw, info)
            if len(memo) < 256:  # a few shapes per field; literal values in documents
                memo[key] = found
        return dict(found)

    return remembered


def _immutable(type_: Any) -> bool:
    """Whether a Strawberry argument type only takes values that cannot be changed (not a
    `Maybe`, whose conversion wraps the value in an object of its own)."""
    if type(type_) is StrawberryOptional:
        type_ = type_.of_type
    return type_ in (str, int, float, bool, ID) or isinstance(type_, StrawberryEnumDefinition)


BatchResolver = Callable[..., Awaitable[Sequence[Any]]]


def batched(batch: BatchResolver) -> Callable[[F], F]:
    """Mark a resolver whose work for many parents at once is `batch(parents, info,
    **arguments)` (one result per parent, in order). The resolver itself still serves one
    parent on the standard path; a plan calls `batch` once per list of parents instead of
    the resolver once per parent. Only for fields without field extensions."""

    def mark(resolver: F) -> F:
        resolver.batch = batch  # type: ignore[attr-defined]
        return resolver

    return mark


def batch_of(field_def: GraphQLField) -> BatchResolver | None:
    definition = strawberry_field(field_def)
    if definition is None or definition.extensions:
        return None
    resolver = definition.base_resolver
    found = getattr(resolver.wrapped_func, "batch", None) if resolver is not None else None
    return cast("BatchResolver | None", found)


@dataclass(eq=False)
class BatchField:
    """A batched field of one selection: what a batch call needs besides its parents."""

    field_def: GraphQLField
    definition: StrawberryField
    nodes: list[FieldNode]
    arguments: Callable[[Run], dict[str, Any]]  # its arguments_of
    parent_type: GraphQLObjectType
    complete: Callable[..., Any]
    batch: BatchResolver
    convert: Callable[[dict[str, Any], Any], dict[str, Any]]  # its arguments_converter
    info_class: type[Any]  # the schema's Strawberry `Info`


class _BatchCall:
    """The parents a batched field met in one wave, and where each answer goes."""

    __slots__ = ("field", "slots", "sources")

    def __init__(self, field: BatchField) -> None:
        self.field = field
        self.sources: list[Any] = []
        self.slots: list[tuple[dict[str, Any], str, Path]] = []

    def start(self, run: Run) -> Awaitable[Sequence[Any]]:
        field = self.field
        executor = run.executor
        path = self.slots[0][2]
        raw_info = executor.build_resolve_info(
            field.field_def, field.nodes, field.parent_type, path
        )
        info = new_info(field.info_class, raw_info, field.definition)
        arguments = field.convert(field.arguments(run), info)
        return field.batch(self.sources, info, **arguments)

    def settle(self, values: Sequence[Any], run: Run) -> None:
        if len(values) != len(self.slots):
            raise Bail
        complete = self.field.complete
        for (into, key, path), value in zip(self.slots, values, strict=True):
            into[key] = complete(value, path, run)


def batcher(
    field_def: GraphQLField,
    details: FieldDetailsList,
    parent_type: GraphQLObjectType,
    complete: Callable[..., Any],
    batch: BatchResolver,
    strawberry_schema: Any,
) -> Callable[..., Any]:
    """Collects a batched field's parents for the wave (graphql-core's `execute_field`
    would resolve each on its own); the placeholder keeps the key's place."""
    definition = strawberry_field(field_def)
    assert definition is not None  # batch_of found it
    field = BatchField(
        field_def,
        definition,
        [detail.node for detail in details],
        arguments_of(field_def, details[0]),
        parent_type,
        complete,
        batch,
        arguments_converter(definition, strawberry_schema),
        strawberry_schema.config.info_class,
    )
    parent_name = parent_type.name

    def add(source: Any, into: dict[str, Any], key: str, parent: Path | None, run: Run) -> Any:
        call = run.batches.get(field)
        if call is None:
            call = run.batches[field] = _BatchCall(field)
            run.pending.append(call)
        call.sources.append(source)
        call.slots.append((into, key, Path(parent, key, parent_name)))
        return None

    return add


async def execute(plan: Plan, executor: Executor) -> dict[str, Any]:
    """The response data; raises (`Bail` or the resolver's own error) where the standard
    path would report an error."""
    run = Run(executor)
    pending: list[Any] = []
    awaitables: list[Awaitable[Any]] = []
    try:
        data = plan(executor.root_value, run)
        while run.pending:
            pending, run.pending, run.batches = run.pending, [], {}
            awaitables = []
            for item in pending:
                awaitables.append(item.start(run) if item.__class__ is _BatchCall else item[0])
            if len(awaitables) == 1:
                values: Sequence[Any] = [await awaitables[0]]
            else:
                values = await gather_with_cancel(*awaitables)
            for item, value in zip(pending, values, strict=True):
                if item.__class__ is _BatchCall:
                    item.settle(value, run)
                else:
                    _, into, key, complete, path = item
                    into[key] = complete(value, path, run)
    except BaseException:
        # Close what never ran: the next wave, and this one when a batched field's call
        # could not start (the calls started before it included). What was awaited has
        # finished, cancelled or not (gather_with_cancel and asyncio's gather wait for
        # their tasks): closing it does nothing.
        _close([*awaitables, *_resolvers(pending), *_resolvers(run.pending)])
        raise
    return data


def _resolvers(pending: Iterable[Any]) -> Iterator[Any]:
    return (item[0] for item in pending if item.__class__ is not _BatchCall)


def _close(awaitables: Iterable[Any]) -> None:
    """Close coroutines that never ran and never will (no 'never awaited' warning)."""
    for awaitable in awaitables:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
