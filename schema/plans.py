"""Operation plans: a query answered without graphql-core's field-by-field execution loop.

graphql-core spends microseconds on every field of a response (a `Path`, a resolve info,
`complete_value`'s type dispatch, an awaitable check), and a small page is mostly that
overhead. A plan is compiled once per document, operation and values of the variables
that `@skip`/`@include` read:

- graphql-core itself collects every selection set (aliases, fragments, inline fragments,
  directives, merging), so the plan answers the same fields in the same order;
- each selection set becomes a generated Python function: a plain field (no resolver, no
  field extension, no arguments) is an attribute read, a leaf is serialized inline when
  its value is what the scalar passes through unchanged (a `str` for String and ID, an
  `int` in range, a `bool`, an enum member seen before) and by the type's own
  `coerce_output_value` otherwise;
- any other field (resolvers, permissions, `Cached`, arguments) calls the field's own
  `resolve` — Strawberry's wrapper with its extensions — with the resolve info, path and
  arguments that graphql-core's executor builds; awaitable results are gathered in waves,
  so sibling resolvers of a list still batch in their DataLoaders.

A plan answers only when nothing goes wrong. Any exception, a null in a non-null position,
a value a scalar refuses, a list that is not a list: `Bail`, and the caller runs the whole
operation through the standard path, which produces the exact errors (queries write
nothing, so running one again is safe). Compiled only for query operations over object
types; mutations, subscriptions, introspection (`__schema`, `__type`), unions, interfaces,
types with an `is_type_of` check and fragment variables stay on the standard path.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar, cast

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    parse,
    specified_rules,
    visit,
)
from graphql.execution import Executor, get_argument_values
from graphql.execution.collect_fields import (
    FieldDetails,
    FieldDetailsList,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.language import FragmentDefinitionNode, VariableNode
from graphql.pyutils import Path, Undefined, gather_with_cancel
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.permission import PermissionExtension
from strawberry.schema.schema import validate_document
from strawberry.schema.schema_converter import get_arguments
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

F = TypeVar("F", bound=Callable[..., Any])
STRAWBERRY_FIELD = "strawberry-definition"  # Strawberry's back-reference on a GraphQLField
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class Bail(Exception):
    """This request leaves the plan: the standard path answers it, errors and all."""


class _Unsupported(Exception):
    """Something the plan does not compile (an abstract type, an `is_type_of` check)."""


# -- Per-request state ---------------------------------------------------------------------


class _Run:
    """One execution of a plan: the graphql-core executor built for the request (variables,
    fragments, context, resolve infos), awaitables waiting for the next wave, and the
    arguments of each field node, coerced once per request."""

    __slots__ = ("_arguments", "batches", "executor", "pending")

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        # a resolver's awaitable (and where its answer goes), or a batched field's call
        self.pending: list[Any] = []
        self.batches: dict[_BatchField, _BatchCall] = {}
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


def _resolver(
    field_def: GraphQLField,
    details: FieldDetailsList,
    parent_type: GraphQLObjectType,
    complete: Callable[..., Any],
    strawberry_schema: Any,
) -> Callable[..., Any]:
    """A field with a resolver, called as graphql-core's `execute_field` calls it."""
    resolve = _guarded_call(field_def, strawberry_schema) or field_def.resolve
    nodes = [detail.node for detail in details]
    first = details[0]
    parent_name = parent_type.name

    def run_field(
        source: Any, into: dict[str, Any], key: str, parent: Path | None, run: _Run
    ) -> Any:
        path = Path(parent, key, parent_name)
        executor = run.executor
        info = executor.build_resolve_info(field_def, nodes, parent_type, path)
        result = resolve(source, info, **run.arguments(field_def, first))  # type: ignore[misc]
        if executor.is_awaitable(result):
            run.pending.append((result, into, key, complete, path))
            return None  # a placeholder keeping the key's place in the response
        return complete(result, path, run)

    return run_field


def _guarded_call(field_def: GraphQLField, strawberry_schema: Any) -> Callable[..., Any] | None:
    """Strawberry's resolver wrapper for the most common resolver field, one whose only
    extensions are permission checks: the same arguments, checks and call, in one
    coroutine instead of four. A refused check raises, and the request leaves the plan.
    None for any other field (its own wrapper runs)."""
    definition = field_def.extensions.get(STRAWBERRY_FIELD)
    if not isinstance(definition, StrawberryField) or definition.base_resolver is None:
        return None
    extensions = definition.extensions
    if not all(isinstance(e, PermissionExtension) and not e.fail_silently for e in extensions):
        return None
    converter = strawberry_schema.schema_converter
    handlers = getattr(converter, "_get_field_exception_handlers", None)
    if handlers is None or handlers(definition):
        return None
    checks = [permission for e in extensions for permission in e.permissions]  # type: ignore[attr-defined]
    info_class = strawberry_schema.config.info_class
    config = strawberry_schema.config
    registry = converter.scalar_registry
    get_result = definition.get_result

    async def call(source: Any, info: Any, **raw: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=definition)
        args, kwargs = get_arguments(
            field=definition,
            source=source,
            info=strawberry_info,
            kwargs=raw,
            config=config,
            scalar_registry=registry,
        )
        checked = {k: v for k, v in kwargs.items() if k != "info"}
        for permission in checks:
            if await permission.has_permission(source, strawberry_info, **checked) is not True:
                raise Bail
        result = get_result(source, strawberry_info, args, kwargs)
        return await result if inspect.isawaitable(result) else result

    return call


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


def _batch_of(field_def: GraphQLField) -> BatchResolver | None:
    definition = field_def.extensions.get(STRAWBERRY_FIELD)
    if not isinstance(definition, StrawberryField) or definition.extensions:
        return None
    resolver = definition.base_resolver
    found = getattr(resolver.wrapped_func, "batch", None) if resolver is not None else None
    return cast("BatchResolver | None", found)


@dataclass(eq=False)
class _BatchField:
    """A batched field of one selection: what a batch call needs besides its parents."""

    field_def: GraphQLField
    definition: StrawberryField
    nodes: list[FieldNode]
    first: FieldDetails
    parent_type: GraphQLObjectType
    complete: Callable[..., Any]
    batch: BatchResolver


class _BatchCall:
    """The parents a batched field met in one wave, and where each answer goes."""

    __slots__ = ("field", "slots", "sources")

    def __init__(self, field: _BatchField) -> None:
        self.field = field
        self.sources: list[Any] = []
        self.slots: list[tuple[dict[str, Any], str, Path]] = []

    def start(self, run: _Run) -> Awaitable[Sequence[Any]]:
        field = self.field
        executor = run.executor
        path = self.slots[0][2]
        raw_info = executor.build_resolve_info(
            field.field_def, field.nodes, field.parent_type, path
        )
        strawberry_schema = executor.schema._strawberry_schema  # type: ignore[attr-defined]
        info = strawberry_schema.config.info_class(_raw_info=raw_info, _field=field.definition)
        arguments = convert_arguments(
            run.arguments(field.field_def, field.first),
            field.definition.arguments,
            scalar_registry=strawberry_schema.schema_converter.scalar_registry,
            config=strawberry_schema.config,
            info=info,
        )
        return field.batch(self.sources, info, **arguments)

    def settle(self, values: Sequence[Any], run: _Run) -> None:
        if len(values) != len(self.slots):
            raise Bail
        complete = self.field.complete
        for (into, key, path), value in zip(self.slots, values, strict=True):
            into[key] = complete(value, path, run)


def _batcher(field: _BatchField) -> Callable[..., Any]:
    """Collects a batched field's parents for the wave (graphql-core's `execute_field`
    would resolve each on its own); the placeholder keeps the key's place."""
    parent_name = field.parent_type.name

    def add(source: Any, into: dict[str, Any], key: str, parent: Path | None, run: _Run) -> Any:
        call = run.batches.get(field)
        if call is None:
            call = run.batches[field] = _BatchCall(field)
            run.pending.append(call)
        call.sources.append(source)
        call.slots.append((into, key, Path(parent, key, parent_name)))
        return None

    return add


# -- Leaves --------------------------------------------------------------------------------


def _leaf(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """`complete_leaf_value`, with a refusal (or a null in a non-null place) as a Bail."""
    coerce_output = type_.coerce_output_value

    def coerce(value: Any) -> Any:
        if value is None:
            raise Bail
        coerced = coerce_output(value)
        if coerced is None or coerced is Undefined:
            raise Bail
        return coerced

    return coerce


def _enum_leaf(type_: GraphQLEnumType, memo: dict[tuple[type, Any], Any]) -> Callable[[Any], Any]:
    """An enum's serialization, remembered per value and its class: members are
    singletons, and rows from the driver hold the members' `str` values."""
    coerce = _leaf(type_)

    def serialize(value: Any) -> Any:
        coerced = coerce(value)
        if isinstance(value, Enum | str) and len(memo) < 1000:
            memo[(value.__class__, value)] = coerced
        return coerced

    return serialize


# -- Code generation -----------------------------------------------------------------------


class _Generator:
    """Writes one Python function per selection set of an operation."""

    def __init__(self, schema: GraphQLSchema, executor: Executor) -> None:
        self.schema = schema
        self.executor = executor
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"Bail": Bail, "Path": Path, "bail": _bail}
        # (name, field, its details, parent type, name of its completer): made after exec
        self._resolvers: list[tuple[str, GraphQLField, FieldDetailsList, GraphQLObjectType, str]]
        self._resolvers = []
        self._batched: list[
            tuple[str, GraphQLField, FieldDetailsList, GraphQLObjectType, str, BatchResolver]
        ] = []
        self._count = 0

    def _name(self, prefix: str, value: Any = None) -> str:
        self._count += 1
        name = f"{prefix}{self._count}"
        if value is not None:
            self.names[name] = value
        return name

    def compile(self) -> Callable[[Any, _Run], dict[str, Any]]:
        executor = self.executor
        root_type = self.schema.get_root_type(executor.operation.operation)
        assert root_type is not None
        grouped = collect_fields(
            self.schema,
            executor.fragments,
            executor.variable_values,
            root_type,
            executor.operation,
            executor.hide_suggestions,
        ).grouped_field_set
        name, with_run = self.selection(root_type, grouped, root=True)
        entry = f"{name}(root, None, run)" if with_run else f"{name}(root)"
        self.lines += ["def plan(root, run):", f"    return {entry}"]
        exec("\n".join(self.lines), self.names)  # the names are the generator's own
        for name, field_def, details, parent_type, complete in self._resolvers:
            self.names[name] = _resolver(
                field_def,
                details,
                parent_type,
                self.names[complete],
                self.schema._strawberry_schema,  # type: ignore[attr-defined]
            )
        for name, field_def, details, parent_type, complete, batch in self._batched:
            definition = field_def.extensions[STRAWBERRY_FIELD]
            nodes = [detail.node for detail in details]
            field = _BatchField(
                field_def, definition, nodes, details[0], parent_type, self.names[complete], batch
            )
            self.names[name] = _batcher(field)
        plan: Callable[[Any, _Run], dict[str, Any]] = self.names["plan"]
        return plan

    def selection(
        self, type_: GraphQLObjectType, grouped: GroupedFieldSet, root: bool = False
    ) -> tuple[str, bool]:
        """A function building the response object of `type_` for this selection set;
        whether it takes (object, path, run) rather than (object) alone. Only the root
        value may be None (the view passes none)."""
        if type_.is_type_of is not None:
            raise _Unsupported(f"{type_.name} checks its values (is_type_of)")
        body: list[str] = []
        with_run = False
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                body.append(f"    d[{key!r}] = {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise _Unsupported(f"{type_.name}.{field_name}")
            attribute = _plain_attribute(field_def)
            batch = None if attribute is not None else _batch_of(field_def)
            if batch is not None:
                name = self._name("b")
                complete = self.completer(field_def.type, details)
                self._batched.append((name, field_def, details, type_, complete, batch))
                body.append(f"    d[{key!r}] = {name}(o, d, {key!r}, p, run)")
                with_run = True
                continue
            if attribute is None:
                resolver = self._name("r")
                complete = self.completer(field_def.type, details)
                self._resolvers.append((resolver, field_def, details, type_, complete))
                body.append(f"    d[{key!r}] = {resolver}(o, d, {key!r}, p, run)")
                with_run = True
                continue
            value, needs_run = self.value(
                field_def.type, "v", details, f"Path(p, {key!r}, {type_.name!r})"
            )
            body += [f"    v = o.{attribute}", f"    d[{key!r}] = {value}"]
            with_run = with_run or needs_run
        name = self._name("s")
        signature = "o, p, run" if with_run else "o"
        self.lines += [f"def {name}({signature}):"]
        if not root:
            self.lines += ["    if o is None: raise Bail"]
        self.lines += ["    d = {}"]
        self.lines += [*body, "    return d", ""]
        return name, with_run

    def completer(self, type_: GraphQLOutputType, details: FieldDetailsList) -> str:
        """A function completing a resolver's result: (value, path, run) → response value."""
        value, _ = self.value(type_, "v", details, "p")
        name = self._name("c")
        self.lines += [f"def {name}(v, p, run):", f"    return {value}", ""]
        return name

    def value(
        self, type_: GraphQLOutputType, var: str, details: FieldDetailsList, path: str
    ) -> tuple[str, bool]:
        """An expression completing `var` (a value of `type_` whose path is `path`), and
        whether it needs the path and the run."""
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            expression = self.leaf(inner, var)
            needs = False
        elif isinstance(inner, GraphQLList):
            name, needs = self.list_of(inner, details)
            expression = f"{name}({var}, {path}, run)" if needs else f"{name}({var})"
        elif isinstance(inner, GraphQLObjectType):
            grouped = self.subfields(inner, details)
            inline = self.inline(inner, grouped, var)
            if inline is not None:
                if non_null:
                    return f"({inline} if {var} is not None else bail())", False
                return f"(None if {var} is None else {inline})", False
            name, needs = self.selection(inner, grouped)
            expression = f"{name}({var}, {path}, run)" if needs else f"{name}({var})"
        else:
            raise _Unsupported(f"abstract type {inner}")
        if non_null:
            return expression, needs
        return f"(None if {var} is None else {expression})", needs

    def subfields(self, type_: GraphQLObjectType, details: FieldDetailsList) -> GroupedFieldSet:
        executor = self.executor
        return collect_subfields(
            self.schema,
            executor.fragments,
            executor.variable_values,
            executor.operation,
            type_,
            details,
            executor.hide_suggestions,
        ).grouped_field_set

    def inline(self, type_: GraphQLObjectType, grouped: GroupedFieldSet, var: str) -> str | None:
        """A dict display answering `var` (not None) when every field of the selection is
        plain all the way down: no call per object, nothing awaited, no path. None when
        some field needs more (a resolver): the selection then gets a function."""
        if type_.is_type_of is not None:
            raise _Unsupported(f"{type_.name} checks its values (is_type_of)")
        items: list[str] = []
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                items.append(f"{key!r}: {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise _Unsupported(f"{type_.name}.{field_name}")
            attribute = _plain_attribute(field_def)
            if attribute is None:
                return None
            value = self.inline_value(field_def.type, details, f"{var}.{attribute}")
            if value is None:
                return None
            items.append(f"{key!r}: {value}")
        return "{" + ", ".join(items) + "}"

    def inline_value(
        self, type_: GraphQLOutputType, details: FieldDetailsList, read: str
    ) -> str | None:
        """An expression completing the attribute `read` of `type_` (None: not inlinable).
        The attribute is read once, into a name of its own (`:=`), where first evaluated."""
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        t = self._name("t")
        if isinstance(inner, GraphQLList):
            name, needs = self.list_of(inner, details)
            if needs:
                return None
            if non_null:
                return f"{name}({read})"
            return f"(None if ({t} := {read}) is None else {name}({t}))"
        if isinstance(inner, GraphQLObjectType):
            nested = self.inline(inner, self.subfields(inner, details), t)
            if nested is None:
                return None
            if non_null:
                return f"({nested} if ({t} := {read}) is not None else bail())"
            return f"(None if ({t} := {read}) is None else {nested})"
        if not isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            raise _Unsupported(f"abstract type {inner}")
        if non_null:
            return self.leaf(inner, t, f"({t} := {read})")
        return f"(None if ({t} := {read}) is None else {self.leaf(inner, t)})"

    def leaf(
        self, type_: GraphQLScalarType | GraphQLEnumType, var: str, first: str | None = None
    ) -> str:
        """A non-null leaf: inline when the value passes through the scalar unchanged.
        `first` replaces `var` where it is evaluated first (to read it there)."""
        first = first or var
        if isinstance(type_, GraphQLEnumType):
            memo: dict[tuple[type, Any], Any] = {}
            table = self._name("m", memo)
            slow = self._name("e", _enum_leaf(type_, memo))
            return f"({table}.get(({first}.__class__, {var})) or {slow}({var}))"
        slow = self._name("l", _leaf(type_))
        name = type_.name
        if name in ("String", "ID"):
            return f"({var} if {first}.__class__ is str else {slow}({var}))"
        if name == "Int":
            return (
                f"({var} if {first}.__class__ is int and {_INT_MIN} <= {var} <= {_INT_MAX} "
                f"else {slow}({var}))"
            )
        if name == "Boolean":
            return f"({var} if {first}.__class__ is bool else {slow}({var}))"
        return f"{slow}({first})"

    def list_of(self, type_: GraphQLList[Any], details: FieldDetailsList) -> tuple[str, bool]:
        """A function completing a list (a `list` or `tuple`; anything else bails)."""
        item, needs = self.value(type_.of_type, "x", details, "Path(p, i, None)")
        name = self._name("a")
        if needs:
            self.lines += [f"def {name}(v, p, run):"]
            loop = f"[{item} for i, x in enumerate(v)]"
        else:
            self.lines += [f"def {name}(v):"]
            loop = f"[{item} for x in v]"
        self.lines += [
            "    if v.__class__ is not list and v.__class__ is not tuple: raise Bail",
            f"    return {loop}",
            "",
        ]
        return name, needs


def _bail() -> Any:
    raise Bail


def _plain_attribute(field_def: GraphQLField) -> str | None:
    """The attribute a field reads when it is plain: Strawberry's default resolver with no
    resolver, extension or argument (what `getattr(source, name)` answers)."""
    definition = field_def.extensions.get(STRAWBERRY_FIELD)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and not definition.arguments
        and not field_def.args
        and definition.default_resolver is getattr
        and definition.python_name.isidentifier()
    ):
        return definition.python_name
    return None


# -- Documents -------------------------------------------------------------------------------

Plan = Callable[[Any, _Run], dict[str, Any]]


@dataclass
class DocumentPlan:
    """A parsed and validated query operation, with its plans per `@skip`/`@include` values."""

    document: DocumentNode
    operation_name: str | None  # the selected operation's own name, for metrics and logs
    directive_variables: tuple[str, ...]  # what `@skip(if: $x)`/`@include(if: $x)` read
    _plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)

    def plan(self, executor: Executor) -> Plan | None:
        """The plan for this request's directive values; None: the standard path."""
        coerced = executor.variable_values.coerced
        key = tuple(coerced.get(name) for name in self.directive_variables)
        if key in self._plans:
            return self._plans[key]
        try:
            plan: Plan | None = _Generator(executor.schema, executor).compile()
        except _Unsupported:
            plan = None
        self._plans[key] = plan  # at most 2^n keys for n Boolean variables; n is small
        return plan


class DocumentPlans:
    """Compiled documents by (query text, operation name), least recently used first out.

    A document that cannot be planned (it does not parse or validate, is not a query,
    asks for introspection) is remembered as None, so the standard path gets it at once.
    """

    def __init__(
        self, schema: GraphQLSchema, max_tokens: int, introspection: bool, maxsize: int = 512
    ) -> None:
        self.schema = schema
        self.max_tokens = max_tokens
        rules: tuple[type[ASTValidationRule], ...] = tuple(specified_rules)
        if not introspection:
            rules = (*rules, NoSchemaIntrospectionCustomRule)
        self.rules = rules
        self.maxsize = maxsize
        self._documents: OrderedDict[tuple[str, str | None], DocumentPlan | None] = OrderedDict()

    def get(self, query: str, operation_name: str | None) -> DocumentPlan | None:
        key = (query, operation_name)
        documents = self._documents
        if key in documents:
            documents.move_to_end(key)
            return documents[key]
        found = self._compile(query, operation_name)
        documents[key] = found
        if len(documents) > self.maxsize:
            documents.popitem(last=False)
        return found

    def _compile(self, query: str, operation_name: str | None) -> DocumentPlan | None:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        operation = _operation(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        if validate_document(self.schema, document, self.rules):
            return None
        scan = _Scan()
        visit(document, scan)
        if scan.introspection or scan.fragment_variables:
            return None
        name = operation.name.value if operation.name else None
        return DocumentPlan(document, name, tuple(sorted(scan.directive_variables)))


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation to run, as `Executor.build` picks it; None where it reports an error."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class _Scan(Visitor):
    """What compiling must know of a document beyond validation."""

    def __init__(self) -> None:
        super().__init__()
        self.introspection = False
        self.fragment_variables = False
        self.directive_variables: set[str] = set()

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value in ("__schema", "__type"):
            self.introspection = True

    def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> None:
        if node.variable_definitions:
            self.fragment_variables = True

    def enter_directive(self, node: Any, *_: Any) -> None:
        if node.name.value in ("skip", "include"):
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    self.directive_variables.add(argument.value.name.value)


async def execute(plan: Plan, executor: Executor) -> dict[str, Any]:
    """The response data; raises (`Bail` or the resolver's own error) where the standard
    path would report an error."""
    run = _Run(executor)
    pending = run.pending
    try:
        data = plan(executor.root_value, run)
        pending = run.pending
        while pending:
            run.pending = []
            run.batches = {}
            awaitables = [
                item.start(run) if item.__class__ is _BatchCall else item[0] for item in pending
            ]
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
            pending = run.pending
    except BaseException:
        _discard(pending)
        _discard(run.pending)
        raise
    return data


def _discard(pending: Sequence[Any]) -> None:
    """Close resolver coroutines a failed plan will never await (no 'never awaited')."""
    for item in pending:
        if item.__class__ is not _BatchCall and inspect.iscoroutine(item[0]):
            item[0].close()
