"""Code generation: one Python function (or dict display) per selection set of a plan."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import (
    FieldDetailsList,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.pyutils import Path, Undefined
from strawberry.types.field import StrawberryField

from schema.common.selection import reads_attribute
from schema.plans.calls import (
    STRAWBERRY_FIELD,
    Bail,
    BatchField,
    BatchResolver,
    Plan,
    arguments_converter,
    arguments_of,
    batch_of,
    batcher,
    resolver,
)

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class Unsupported(Exception):
    """Something the plan does not compile (an abstract type, an `is_type_of` check)."""


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


class Generator:
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

    def compile(self) -> Plan:
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
            self.names[name] = resolver(
                field_def,
                details,
                parent_type,
                self.names[complete],
                self.schema._strawberry_schema,  # type: ignore[attr-defined]
            )
        for name, field_def, details, parent_type, complete, batch in self._batched:
            definition = field_def.extensions[STRAWBERRY_FIELD]
            nodes = [detail.node for detail in details]
            field = BatchField(
                field_def,
                definition,
                nodes,
                arguments_of(field_def, details[0]),
                parent_type,
                self.names[complete],
                batch,
                arguments_converter(definition, self.schema._strawberry_schema),  # type: ignore[attr-defined]
            )
            self.names[name] = batcher(field)
        plan: Plan = self.names["plan"]
        return plan

    def selection(
        self, type_: GraphQLObjectType, grouped: GroupedFieldSet, root: bool = False
    ) -> tuple[str, bool]:
        """A function building the response object of `type_` for this selection set;
        whether it takes (object, path, run) rather than (object) alone. Only the root
        value may be None (the view passes none)."""
        if type_.is_type_of is not None:
            raise Unsupported(f"{type_.name} checks its values (is_type_of)")
        body: list[str] = []
        with_run = False
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                body.append(f"    d[{key!r}] = {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise Unsupported(f"{type_.name}.{field_name}")
            attribute = _plain_attribute(field_def)
            batch = None if attribute is not None else batch_of(field_def)
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
            raise Unsupported(f"abstract type {inner}")
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
            raise Unsupported(f"{type_.name} checks its values (is_type_of)")
        items: list[str] = []
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                items.append(f"{key!r}: {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise Unsupported(f"{type_.name}.{field_name}")
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
            raise Unsupported(f"abstract type {inner}")
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
        and reads_attribute(definition.default_resolver)
        and definition.python_name.isidentifier()
    ):
        return definition.python_name
    return None
