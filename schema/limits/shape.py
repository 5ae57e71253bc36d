"""An operation's shape: depth, aliases, repeated fields and cost, measured in one walk.

Depth, aliases, repeats and cost are measured in one walk of the operation before the
standard validation rules run, with each fragment measured once. The same walk reads every
String argument value (literal or variable) and refuses one, naming the argument, before any
resolver sees it: one longer than its argument's declared `@maxLength`
(schema/common/directives.py), which a field cache would otherwise hash into its key before
the resolver could refuse it, and one holding a NUL character, which PostgreSQL's text
cannot hold. Strawberry's QueryDepthLimiter and MaxAliasesLimiter re-walk a fragment at
every spread, which a chain of fragments each spreading the next twice turns into
exponential validation time (tests/test_limits.py::test_fragment_fan_out_is_cheap).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    value_from_ast_untyped,
)

from app.config import Settings
from schema.common.directives import max_length
from schema.limits.errors import BadArgumentError, LimitError


@dataclass(frozen=True, slots=True)
class BadArgument:
    """A String value refused: where (the argument, and the path inside it), why, and
    whether the argument was a variable (not the document's own text)."""

    path: str
    message: str
    in_variables: bool


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int
    aliases: int
    cost: int
    # Most field nodes merged into one response path (`a.b` asked for 3 times: 3). The
    # standard OverlappingFieldsCanBeMerged rule compares those nodes pairwise, so a
    # document repeating the same fields costs validation time quadratic in this number.
    repeats: int = 0
    bad_argument: BadArgument | None = None


@dataclass(slots=True)
class _Shape:
    """A selection set's measure and, per relative response path, how many nodes merge."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0
    paths: dict[str, int] = field(default_factory=dict)


_SATURATED = 10**9


def _add_paths(into: dict[str, int], prefix: str, paths: dict[str, int]) -> None:
    for path, count in paths.items():
        key = f"{prefix}.{path}" if prefix else path
        into[key] = min(into.get(key, 0) + count, _SATURATED)


class _Walker:
    """Measures one operation; fragments are memoized, so the walk is linear in the document."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        settings: Settings,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.settings = settings
        self.bad_argument: BadArgument | None = None
        self._memo: dict[tuple[str, bool], _Shape] = {}
        self._active: set[str] = set()
        self.cap = settings.query_max_cost + 1  # costs saturate: no giant integers

    def selection_set(
        self, node: SelectionSetNode | None, parent: GraphQLNamedType | None, paged: bool
    ) -> _Shape:
        shape = _Shape()
        if node is None:
            return shape
        paths = shape.paths
        fields = (
            parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        )
        # Summed, then saturated once: the same as saturating each sum, the terms being >= 0.
        depth = aliases = cost = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                alias = selection.alias
                response = name if alias is None else alias.value
                count = paths.get(response, 0) + 1
                paths[response] = count if count < _SATURATED else _SATURATED
                if alias is not None:
                    aliases += 1
                # Introspection is bounded by the token limit and off in production; unknown
                # fields are for validation to report, and cost nothing here.
                definition = None if fields is None or name.startswith("__") else fields.get(name)
                if definition is not None and selection.arguments and self.bad_argument is None:
                    self.bad_argument = _bad_argument(selection, definition, self.variables)
                if selection.selection_set is None:  # a leaf (most fields): depth 1, cost 1
                    depth = depth or 1
                    if definition is not None:
                        cost += 1
                    continue
                inner = self.field(selection, definition, paged)
                if inner.paths:
                    _add_paths(paths, response, inner.paths)
            else:
                if isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    scope = self.schema.get_type(condition.name.value) if condition else parent
                    inner = self.selection_set(selection.selection_set, scope, paged)
                else:
                    assert isinstance(selection, FragmentSpreadNode)
                    inner = self.fragment(selection.name.value, paged)
                _add_paths(paths, "", inner.paths)  # fragments merge into this level
            if inner.depth > depth:
                depth = inner.depth
            aliases += inner.aliases
            cost += inner.cost
        shape.depth = depth
        shape.aliases = min(aliases, _SATURATED)
        shape.cost = min(cost, self.cap)
        return shape

    def fragment(self, name: str, paged: bool) -> _Shape:
        key = (name, paged)
        if key in self._memo:
            return self._memo[key]
        definition = self.fragments.get(name)
        if definition is None or name in self._active:  # validation reports these
            return _Shape()
        self._active.add(name)
        parent = self.schema.get_type(definition.type_condition.name.value)
        shape = self.selection_set(definition.selection_set, parent, paged)
        self._active.discard(name)
        self._memo[key] = shape
        return shape

    def field(self, node: FieldNode, definition: GraphQLField | None, paged: bool) -> _Shape:
        """The shape of a field with a selection set, its own alias aside; `paths` are those of
        its children, relative to it."""
        if definition is None:  # its children still count as repeats
            children = self.selection_set(node.selection_set, None, False)
            return _Shape(1, children.aliases, 0, children.paths)
        multiplier, children_paged = self._multiplier(node, definition, paged)
        child_type = get_named_type(definition.type)
        children = self.selection_set(node.selection_set, child_type, children_paged)
        return _Shape(
            children.depth + 1,
            children.aliases,
            min(1 + multiplier * children.cost, self.cap),
            children.paths,
        )

    def _multiplier(
        self, node: FieldNode, definition: GraphQLField, paged: bool
    ) -> tuple[int, bool]:
        """How many times the children are resolved, and whether they are a page's items."""
        is_list = _is_list(definition.type)
        if "first" in definition.args:
            size = self._first(node, definition)
            # A connection's `nodes`/`edges` lists are the page the `first` already counted.
            return size, not is_list
        if is_list:
            return (1 if paged else self.settings.query_cost_list_size), False
        return 1, False

    def _first(self, node: FieldNode, definition: GraphQLField) -> int:
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
        if value is None:
            default = definition.args["first"].default_value
            value = default if isinstance(default, int) else self.settings.page_size_default
        if isinstance(value, bool) or not isinstance(value, int):
            return self.settings.page_size_default  # coercion will refuse it
        return max(value, 1)


def _bad_argument(
    node: FieldNode, definition: GraphQLField, variables: dict[str, Any]
) -> BadArgument | None:
    """The first of the field's String arguments (or their input fields) refused; variables
    are read as sent (with their defaults)."""
    for argument in node.arguments or ():
        name = argument.name.value
        argument_def = definition.args.get(name)
        if argument_def is not None:  # unknown arguments are for validation to report
            value = value_from_ast_untyped(argument.value, variables)
            found = _bad_string(value, argument_def.type, max_length(argument_def))
            if found is not None:
                segments, why = found
                path = name + "".join(reversed(segments))
                # A variable inside a literal list or object counts as the document's: it is
                # then only parsed again.
                return BadArgument(path, f"{path} {why}", isinstance(argument.value, VariableNode))
    return None


def _bad_string(
    value: Any, type_: GraphQLInputType, limit: int | None
) -> tuple[list[str], str] | None:
    """The first String in `value` longer than `limit` (the argument's own Strings, a list's
    included, not its input fields') or holding a NUL character: its path's segments, from
    the String up (made only for the one found: an import's 10,000 rows have 40,000), and
    why."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):  # one item stands for a list of it
            return _bad_string(value, type_.of_type, limit)
        named = get_named_type(type_)
        if named is not GraphQLString and not isinstance(named, GraphQLInputObjectType):
            return None  # ids, numbers, enums: nothing to read in (`nodes(ids:)` takes 100,000)
        item_type = type_.of_type
        for index, item in enumerate(value):
            found = _bad_string(item, item_type, limit)
            if found is not None:
                found[0].append(f"[{index}]")
                return found
    elif isinstance(type_, GraphQLInputObjectType):
        if isinstance(value, dict):
            fields = type_.fields
            for name, field_value in value.items():
                field_def = fields.get(name)
                if field_def is not None:
                    found = _bad_string(field_value, field_def.type, None)
                    if found is not None:
                        found[0].append(f".{name}")
                        return found
    elif type_ is GraphQLString and isinstance(value, str):
        # The length first: it costs nothing, and the NUL search reads the whole text.
        if limit is not None and len(value) > limit:
            return [], f"must be at most {limit} characters, got {len(value)}"
        if "\x00" in value:
            return [], "cannot contain a NUL character (U+0000)"
    return None


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        if isinstance(type_, GraphQLList):
            return True
        type_ = type_.of_type
    return False


def measure_operation(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
) -> Measure | None:
    """Depth, aliases and cost of the operation that will run (None: none matches)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    # A variable left out takes its declared default (`$n: Int = 100`), as in execution; one
    # sent as null stays null. The default is in the document's text, so in the cache key.
    declared = {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in operation.variable_definitions or ()
        if d.default_value is not None
    }
    root = schema.get_root_type(operation.operation)
    walker = _Walker(schema, fragments, {**declared, **(variables or {})}, settings)
    shape = walker.selection_set(operation.selection_set, root, False)
    repeats = max(shape.paths.values(), default=0)
    return Measure(shape.depth, shape.aliases, shape.cost, repeats, walker.bad_argument)


def check_measure(measure: Measure, settings: Settings) -> LimitError | None:
    if measure.depth > settings.query_max_depth:
        return LimitError(
            f"query depth {measure.depth} exceeds the maximum of {settings.query_max_depth}",
            "QUERY_TOO_DEEP",
        )
    if measure.aliases > settings.query_max_aliases:
        return LimitError(
            f"{measure.aliases} aliases exceed the maximum of {settings.query_max_aliases}",
            "TOO_MANY_ALIASES",
        )
    if measure.repeats > settings.query_max_field_repeats:
        return LimitError(
            f"a field is asked for {measure.repeats} times in one place; at most "
            f"{settings.query_max_field_repeats}",
            "TOO_MANY_REPEATS",
        )
    if measure.cost > settings.query_max_cost:
        return LimitError(
            f"query cost exceeds the maximum of {settings.query_max_cost}: ask for "
            "smaller pages (`first`) or fewer nested connections",
            "QUERY_TOO_COMPLEX",
            maxCost=settings.query_max_cost,
        )
    bad = measure.bad_argument
    if bad is not None:
        return BadArgumentError(bad.message, bad.path, bad.in_variables)
    return None


class _MeasureCache:
    """Measures per (scale settings, document text, operation, variables): a client sends the same
    few documents again and again, and the walk costs as much as a small query's execution.
    Variables over 64 KB, never sent twice, are measured each time: a digest costs more."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: dict[tuple[object, ...], Measure | None] = {}

    def get(
        self,
        settings: Settings,
        schema: GraphQLSchema,
        document: Any,
        query: str | None,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> Measure | None:
        # `first: $size` makes the cost depend on the variables, so they are in the key: as a
        # digest, so that an entry stays small whatever they hold (512 entries of a 900 KB
        # search each would hold 500 MB).
        digest = b""
        if variables:
            raw = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)
            if len(raw) > 64 * 1024:
                return measure_operation(schema, document, operation_name, variables, settings)
            digest = hashlib.blake2b(raw, digest_size=32).digest()
        # The settings a measure depends on (the check against the maxima runs every time).
        scale = (settings.query_max_cost, settings.page_size_default, settings.query_cost_list_size)
        key = (*scale, query or "", operation_name, digest)
        if key in self._entries:
            return self._entries[key]
        measure = measure_operation(schema, document, operation_name, variables, settings)
        if len(self._entries) >= self.maxsize:
            self._entries.clear()
        self._entries[key] = measure
        return measure


_measures = _MeasureCache()


def limit_error(
    settings: Settings,
    schema: GraphQLSchema,
    document: Any,
    query: str | None,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> LimitError | None:
    """The refusal of an operation too deep, too wide or too costly; None when within limits."""
    measure = _measures.get(settings, schema, document, query, operation_name, variables)
    return None if measure is None else check_measure(measure, settings)
