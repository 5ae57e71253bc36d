"""Planned execution: plain attribute fields answered without graphql-core's per-field work.

graphql-core spends about 8 µs on every field it resolves (a `Path`, a resolve info, the
resolver wrapper, `complete_value`'s type dispatch), which on a 1,000-leaf page is most of
the request. Most of those fields are plain attributes of objects a loader already built.
`PlannedExecutor` is graphql-core's documented extension point (`execution_context_class`):
for each selection set it plans once which fields are plain, reads those with `getattr`,
serializes leaves with the type's own `coerce_output_value`, and hands everything else to
the standard path, field by field, subtree by subtree.

A field takes the fast path ("plain") when all of these hold:
- its Strawberry definition has no resolver, no field extension (permissions, caching),
  no arguments, and Strawberry's default resolver (`getattr`);
- its type is built from scalars, enums, lists, non-null and object types, whose values
  are checked (`is_type_of`: types implementing an interface have Strawberry's) by their
  exact class, any other object taking the standard path's check;
- no schema extension wraps resolvers (graphql middleware, e.g. tracing).
`__typename` is answered from the parent type. Everything else (resolvers, field
extensions, arguments, unions and interfaces, introspection, any value that is not a list
where a list is expected) runs through the standard executor, whose results and errors the
fast path reproduces: the same null propagation, messages and paths (tests/test_differential.py
compares both paths on every document of the test suite and the README, and on generated
ones). `HERALD_FAST_EXECUTION=false` turns the fast path off.

Plans are cached per schema field for good (the schema never changes) and per selection set
for the request (graphql-core memoizes collected fields per request, so a list of 100 items
plans its items once).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.common.selection import ColumnNotFetched
from schema.execution.fields import LEAF, OBJECT, FieldPlan, TypeNode, plan_field

# A planned selection: (response name, its field details, plan or None for the standard path,
# or the parent type's name for `__typename`).
_Step = tuple[str, FieldDetailsList, "FieldPlan | str | None"]


_MISSING = object()


def _alive(executor: weakref.ref[PlannedExecutor]) -> PlannedExecutor:
    found = executor()
    assert found is not None  # resolvers run while their executor does
    return found


class _Unplanned(Exception):
    """A plain field holds what its plan does not complete (not a list where a list is
    expected, an object of another class than its type checks for): the standard path
    answers it, errors and all."""


class UnrepresentableValue(Exception):
    """A value of the server's own that its field's scalar or enum refuses (a count past
    BigInt's range, a status the enum lacks): graphql-core raises the scalar's GraphQLError,
    which would read as the client's mistake (BAD_USER_INPUT) and never reach the log. As
    this, it is unexpected (schema/masking.py): logged with an id, masked in prod."""


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's standard executor with plain fields answered from a per-selection plan."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core's helpers hold bound methods of the executor: a reference cycle that
        # kept the whole request (context, loaders, every row loaded) alive until the cyclic
        # GC found it, a third of a 1,000-message page's CPU. Weak references break it.
        executor = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: _alive(executor).gather_async_work(values),
            track=lambda values: _alive(executor).track_async_work(values),
        )
        settings = getattr(self.context_value, "settings", None)
        manager = self.middleware_manager
        # Incremental delivery (@defer, @stream) carries per-position state the plan
        # does not: schemas that declare those directives take the standard path.
        self.fast = (
            bool(getattr(settings, "fast_execution", True))
            and (manager is None or not manager.middlewares)
            and self.schema.get_directive("defer") is None
            and self.schema.get_directive("stream") is None
        )
        # id(grouped field set) → (the set, kept alive so its id stays unique; its plan)
        self._plans: dict[int, tuple[GroupedFieldSet, list[_Step]]] = {}

    @staticmethod
    def complete_leaf_value(return_type: GraphQLLeafType, result: Any) -> Any:
        try:
            return StrawberryGraphQLCoreExecutionContext.complete_leaf_value(return_type, result)
        except GraphQLError as error:
            raise UnrepresentableValue(error.message) from error

    def execute_operation(self, serially: bool | None = None) -> Any:
        """graphql-core's, ending once the work it left behind has settled.

        When a field fails before its siblings were awaited, graphql-core leaves them to
        settle in the background (`settle_in_background`), where they would go on reading
        after the request's session is finished and past its time limit: the operation
        waits for them, and cancels them if it is cancelled itself.
        """
        result = super().execute_operation(serially)
        if self.background_futures or self.is_awaitable(result):
            return self._settled(result)
        return result

    async def _settled(self, result: Any) -> Any:
        background = self.background_futures  # graphql-core drops each one once it is done
        try:
            if self.is_awaitable(result):
                result = await result
        except BaseException:
            for future in background:
                future.cancel()
            raise
        finally:
            while background:
                await asyncio.wait(list(background))
        return result

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[_Step]:
        cached = self._plans.get(id(fields))
        if cached is not None:
            return cached[1]
        steps: list[_Step] = []
        for response_name, details in fields.items():
            name = details[0].node.name.value
            if name == "__typename":
                steps.append((response_name, details, parent_type.name))
            else:
                steps.append((response_name, details, plan_field(parent_type, name)))
        self._plans[id(fields)] = (fields, steps)
        return steps

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self.fast:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, details, plan in self._plan(parent_type, grouped_field_set):
                if plan.__class__ is FieldPlan:
                    node = plan.node
                    if node.kind is LEAF:  # most fields: a scalar read off the object
                        value = getattr(source_value, plan.attribute, _MISSING)
                        if node.text and value.__class__ is str:
                            results[response_name] = value
                            continue
                        if value is not None and value is not _MISSING:
                            try:
                                coerced = node.leaf.coerce_output_value(value)  # type: ignore[union-attr]
                            except Exception:
                                coerced = None
                            if coerced is not None and coerced is not Undefined:
                                results[response_name] = coerced
                                continue
                    # anything unusual: `_plain` reads it again and fails as the standard path
                    result = self._plain(
                        parent_type,
                        source_value,
                        details,
                        path,
                        response_name,
                        plan,
                    )
                elif plan.__class__ is str:
                    results[response_name] = plan
                    continue
                elif plan is None:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        details,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gather_fields(results, awaitable_fields)

    def _plain(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        details: FieldDetailsList,
        path: Path | None,
        response_name: str,
        plan: FieldPlan,
    ) -> Any:
        """A plain field the inlined scalar case did not settle: objects, lists, nulls and
        values a scalar refuses, with the standard path's error handling."""
        node = plan.node
        field_path = Path(path, response_name, parent_type.name)
        try:
            value = getattr(source, plan.attribute)
            completed = self._complete(node, value, details, field_path, parent_type)
        except (_Unplanned, ColumnNotFetched):  # the resolver reports it, or fetches it
            return self.execute_field(parent_type, source, details, field_path, None)
        except Exception as raw_error:
            self.handle_field_error(raw_error, node.type_, details, field_path)
            return None
        if self.is_awaitable(completed):
            return self._await_field(completed, node.type_, details, field_path)
        return completed

    def _complete(
        self,
        node: TypeNode,
        value: Any,
        details: FieldDetailsList,
        path: Path,
        parent_type: GraphQLObjectType,
    ) -> Any:
        """`complete_value` for a planned type; raises what the standard path would."""
        if value is None:
            if node.non_null:
                field_name = details[0].node.name.value
                raise TypeError(
                    f"Cannot return null for non-nullable field {parent_type}.{field_name}."
                )
            return None
        kind = node.kind
        if kind is LEAF:
            if node.text and value.__class__ is str:
                return value
            return self.complete_leaf_value(node.leaf, value)  # type: ignore[arg-type]
        if kind is OBJECT:
            if node.checked is not None and value.__class__ is not node.checked:
                raise _Unplanned
            object_type: GraphQLObjectType = node.object_type  # type: ignore[assignment]
            fields, defers, _ = self.collect_subfields(object_type, details)
            return self.execute_collected_subfields(object_type, value, path, fields, defers, None)
        if not isinstance(value, list | tuple):
            raise _Unplanned
        return self._complete_list(node.item, value, details, path, parent_type)  # type: ignore[arg-type]

    def _complete_list(
        self,
        item: TypeNode,
        values: list[Any] | tuple[Any, ...],
        details: FieldDetailsList,
        path: Path,
        parent_type: GraphQLObjectType,
    ) -> Any:
        """`complete_iterable_value` with `complete_list_item_value`'s error handling."""
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        is_awaitable = self.is_awaitable
        complete = self._complete
        item_type = item.type_
        if item.kind is OBJECT:  # one collection of the items' fields for the whole list
            checked = item.checked
            if checked is not None and any(
                v.__class__ is not checked for v in values if v is not None
            ):
                raise _Unplanned
            object_type: GraphQLObjectType = item.object_type  # type: ignore[assignment]
            fields = self.collect_subfields(object_type, details)[0]
            execute_fields = self.execute_fields
        try:
            for index, value in enumerate(values):
                try:
                    if value is not None and item.kind is OBJECT:
                        result = execute_fields(
                            object_type, value, Path(path, index, None), fields, None
                        )
                    else:
                        result = complete(
                            item, value, details, Path(path, index, None), parent_type
                        )
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, details, Path(path, index, None))
                    result = None
                else:
                    if is_awaitable(result):
                        result = self._await_field(
                            result, item_type, details, Path(path, index, None)
                        )
                        awaitable_indices.append(index)
                completed.append(result)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed[index] for index in awaitable_indices])
            raise
        if not awaitable_indices:
            return completed
        return _gather_items(completed, awaitable_indices)

    async def _await_field(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        details: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, details, path)
            return None


async def _gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    if len(awaitable_fields) == 1:
        field = awaitable_fields[0]
        results[field] = await results[field]
    else:
        awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results


async def _gather_items(completed: list[Any], awaitable_indices: list[int]) -> list[Any]:
    if len(awaitable_indices) == 1:
        index = awaitable_indices[0]
        completed[index] = await completed[index]
    else:
        awaited = await gather_with_cancel(*(completed[index] for index in awaitable_indices))
        for index, value in zip(awaitable_indices, awaited, strict=True):
            completed[index] = value
    return completed
