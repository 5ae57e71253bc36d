"""Code generation: one Python function (or dict display) per selection set of a plan."""

from __future__ import annotations

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
from graphql.pyutils import Path

from app.codegen import define
from schema.common.node import checked_class
from schema.common.scalars import BIG_INT_MAX
from schema.execution.fields import plain_attribute
from schema.execution.plans.calls import (
    Bail,
    BatchResolver,
    Plan,
    batch_of,
    batcher,
    resolver,
)
from schema.execution.plans.leaves import enum_leaf, scalar_leaf

# The whole-number scalars a value passes through unchanged within: (least, greatest).
_WHOLE = {"Int": (-(2**31), 2**31 - 1), "BigInt": (-BIG_INT_MAX, BIG_INT_MAX)}


class Unsupported(Exception):
    """Something the plan does not compile (an abstract type, an `is_type_of` check)."""


# -- Code generation -----------------------------------------------------------------------


class Generator:
    """Writes one Python function per selection set of an operation, named after the
    operation and the field path: `plan_CampaignPage__campaigns_nodes` builds an item of
    `campaigns.nodes`, `list_...` completes a list, `complete_...` a resolver's result;
    `resolve_...` and `batch_...` call fields, `serialize_<Type>` serializes a leaf."""

    def __init__(self, strawberry_schema: Any, executor: Executor) -> None:
        self.strawberry_schema = strawberry_schema
        self.schema: GraphQLSchema = executor.schema
        self.executor = executor
        name = executor.operation.name
        self.title = name.value if name else ""  # set from the root fields when anonymous
        self.operation = name.value if name else "query"
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"Bail": Bail, "Path": Path, "bail": _bail}
        self._taken: set[str] = set(self.names)
        # (name, field, its details, parent type, name of its completer): made after exec
        self._resolvers: list[tuple[str, GraphQLField, FieldDetailsList, GraphQLObjectType, str]]
        self._resolvers = []
        self._batched: list[
            tuple[str, GraphQLField, FieldDetailsList, GraphQLObjectType, str, BatchResolver]
        ] = []

    def _name(self, kind: str, keys: tuple[str, ...]) -> str:
        """`kind_Operation__key_key`, unique in the plan."""
        base = f"{kind}_{self.operation}" + ("__" + "_".join(keys) if keys else "")
        name, number = base, 1
        while name in self._taken:
            number += 1
            name = f"{base}_{number}"
        self._taken.add(name)
        return name

    def _local(self, attribute: str) -> str:
        """A name for an attribute read once inside an expression (`:=`): `phone_1`."""
        number = 1
        while f"{attribute}_{number}" in self._taken:
            number += 1
        self._taken.add(name := f"{attribute}_{number}")
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
        self.title = self.title or "{ " + " ".join(grouped) + " }"
        entry, _ = self.selection(root_type, grouped, (), root=True)
        plan: Plan = define("plan", self.title, "\n".join(self.lines), self.names, entry)
        names, schema = self.names, self.strawberry_schema
        for name, field_def, details, parent, complete in self._resolvers:
            names[name] = resolver(field_def, details, parent, names[complete], schema)
        for name, field_def, details, parent, complete, batch in self._batched:
            names[name] = batcher(field_def, details, parent, names[complete], batch, schema)
        return plan

    def selection(
        self,
        type_: GraphQLObjectType,
        grouped: GroupedFieldSet,
        keys: tuple[str, ...],
        root: bool = False,
    ) -> tuple[str, bool]:
        """A function building the response object of `type_` for this selection set (at
        response path `keys`); whether it takes (obj, path, run) rather than (obj) alone.
        The root's is the plan: (root value, run). Only the root value may be None (the
        view passes none)."""
        body: list[str] = []
        with_run = False
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                body.append(f"    data[{key!r}] = {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise Unsupported(f"{type_.name}.{field_name}")
            attribute = plain_attribute(field_def)
            batch = None if attribute is not None else batch_of(field_def)
            call = f"(obj, data, {key!r}, path, run)"
            if batch is not None:
                name = self._name("batch", (*keys, key))
                complete = self.completer(field_def.type, details, (*keys, key))
                self._batched.append((name, field_def, details, type_, complete, batch))
                body.append(f"    data[{key!r}] = {name}{call}")
                with_run = True
                continue
            if attribute is None:
                name = self._name("resolve", (*keys, key))
                complete = self.completer(field_def.type, details, (*keys, key))
                self._resolvers.append((name, field_def, details, type_, complete))
                body.append(f"    data[{key!r}] = {name}{call}")
                with_run = True
                continue
            value, needs_run = self.value(
                field_def.type,
                "value",
                details,
                f"Path(path, {key!r}, {type_.name!r})",
                (*keys, key),
            )
            body += [f"    value = obj.{attribute}", f"    data[{key!r}] = {value}"]
            with_run = with_run or needs_run
        name = self._name("plan", keys)
        if root:
            self.lines += [f"def {name}(obj, run):", "    path = None"]
        else:
            signature = "obj, path, run" if with_run else "obj"
            self.lines += [
                f"def {name}({signature}):",
                f"    if {self.absent(type_, 'obj')}: raise Bail",
            ]
        self.lines += ["    data = {}", *body, "    return data", ""]
        return name, with_run

    def exact_class(self, type_: GraphQLObjectType) -> str | None:
        """The name of the class every object of `type_` has when the type checks its values
        (`is_type_of`: Strawberry's, on a type implementing an interface); any other object
        leaves the plan, for the standard path's check. None: the type checks nothing."""
        try:
            found = checked_class(type_)
        except ValueError as exc:
            raise Unsupported(str(exc)) from None
        if found is None:
            return None
        self.names[name := f"class_{type_.name}"] = found
        return name

    def present(self, type_: GraphQLObjectType, var: str, first: str | None = None) -> str:
        """A condition: `var` (evaluated as `first`, where given) holds an object of `type_`."""
        exact = self.exact_class(type_)
        first = first or var
        return f"{first}.__class__ is {exact}" if exact else f"{first} is not None"

    def absent(self, type_: GraphQLObjectType, var: str) -> str:
        """The condition `present` denies."""
        exact = self.exact_class(type_)
        return f"{var}.__class__ is not {exact}" if exact else f"{var} is None"

    def completer(
        self, type_: GraphQLOutputType, details: FieldDetailsList, keys: tuple[str, ...]
    ) -> str:
        """A function completing a resolver's result: (value, path, run) → response value."""
        value, _ = self.value(type_, "value", details, "path", keys)
        name = self._name("complete", keys)
        self.lines += [f"def {name}(value, path, run):", f"    return {value}", ""]
        return name

    def value(
        self,
        type_: GraphQLOutputType,
        var: str,
        details: FieldDetailsList,
        path: str,
        keys: tuple[str, ...],
    ) -> tuple[str, bool]:
        """An expression completing `var` (a value of `type_` whose path is `path`), and
        whether it needs the path and the run."""
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            expression = self.leaf(inner, var)
            needs = False
        elif isinstance(inner, GraphQLList):
            name, needs = self.list_of(inner, details, keys)
            expression = f"{name}({var}, {path}, run)" if needs else f"{name}({var})"
        elif isinstance(inner, GraphQLObjectType):
            grouped = self.subfields(inner, details)
            # What an attempt to inline wrote is dropped when it fails (no dead functions).
            mark = (len(self.lines), set(self._taken), len(self._resolvers), len(self._batched))
            inline = self.inline(inner, grouped, var, keys)
            if inline is not None:
                if non_null:
                    return f"({inline} if {self.present(inner, var)} else bail())", False
                if exact_class := self.exact_class(inner):
                    inline = f"{inline} if {var}.__class__ is {exact_class} else bail()"
                return f"(None if {var} is None else {inline})", False
            del self.lines[mark[0] :], self._resolvers[mark[2] :], self._batched[mark[3] :]
            self._taken = mark[1]
            name, needs = self.selection(inner, grouped, keys)
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

    def inline(
        self, type_: GraphQLObjectType, grouped: GroupedFieldSet, var: str, keys: tuple[str, ...]
    ) -> str | None:
        """A dict display answering `var` (not None) when every field of the selection is
        plain all the way down: no call per object, nothing awaited, no path. None when
        some field needs more (a resolver): the selection then gets a function."""
        self.exact_class(type_)  # a type it cannot check is Unsupported
        items: list[str] = []
        for key, details in grouped.items():
            field_name = details[0].node.name.value
            if field_name == "__typename":
                items.append(f"{key!r}: {type_.name!r}")
                continue
            field_def = self.schema.get_field(type_, field_name)
            if field_def is None or field_name.startswith("__"):
                raise Unsupported(f"{type_.name}.{field_name}")
            attribute = plain_attribute(field_def)
            if attribute is None:
                return None
            read = f"{var}.{attribute}"
            value = self.inline_value(field_def.type, details, read, attribute, (*keys, key))
            if value is None:
                return None
            items.append(f"{key!r}: {value}")
        return "{" + ", ".join(items) + "}"

    def inline_value(
        self,
        type_: GraphQLOutputType,
        details: FieldDetailsList,
        read: str,
        attribute: str,
        keys: tuple[str, ...],
    ) -> str | None:
        """An expression completing the attribute `read` of `type_` (None: not inlinable).
        The attribute is read once, into a name of its own (`:=`), where first evaluated."""
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        t = self._local(attribute)
        if isinstance(inner, GraphQLList):
            name, needs = self.list_of(inner, details, keys)
            if needs:
                return None
            if non_null:
                return f"{name}({read})"
            return f"(None if ({t} := {read}) is None else {name}({t}))"
        if isinstance(inner, GraphQLObjectType):
            nested = self.inline(inner, self.subfields(inner, details), t, keys)
            if nested is None:
                return None
            if non_null:
                return f"({nested} if {self.present(inner, t, f'({t} := {read})')} else bail())"
            if exact_class := self.exact_class(inner):
                nested = f"{nested} if {t}.__class__ is {exact_class} else bail()"
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
        slow = f"serialize_{type_.name}"  # one per type and plan (an enum's with its memo)
        if isinstance(type_, GraphQLEnumType):
            seen = f"seen_{type_.name}"
            if seen not in self.names:
                memo: dict[tuple[type, Any], Any] = {}
                self.names[seen], self.names[slow] = memo, enum_leaf(type_, memo)
            return f"({seen}.get(({first}.__class__, {var})) or {slow}({var}))"
        self.names.setdefault(slow, scalar_leaf(type_))
        name = type_.name
        if name in ("String", "ID"):
            return f"({var} if {first}.__class__ is str else {slow}({var}))"
        if name in _WHOLE:
            least, greatest = _WHOLE[name]
            return (
                f"({var} if {first}.__class__ is int and {least} <= {var} <= {greatest} "
                f"else {slow}({var}))"
            )
        if name == "Boolean":
            return f"({var} if {first}.__class__ is bool else {slow}({var}))"
        return f"{slow}({first})"

    def list_of(
        self, type_: GraphQLList[Any], details: FieldDetailsList, keys: tuple[str, ...]
    ) -> tuple[str, bool]:
        """A function completing a list (a `list` or `tuple`; anything else bails)."""
        item, needs = self.value(type_.of_type, "item", details, "Path(path, index, None)", keys)
        name = self._name("list", keys)
        if needs:
            self.lines += [f"def {name}(value, path, run):"]
            loop = f"[{item} for index, item in enumerate(value)]"
        else:
            self.lines += [f"def {name}(value):"]
            loop = f"[{item} for item in value]"
        self.lines += [
            "    if value.__class__ is not list and value.__class__ is not tuple: raise Bail",
            f"    return {loop}",
            "",
        ]
        return name, needs


def _bail() -> Any:
    raise Bail
