"""Documents a plan can answer, checked once, with a plan per `@skip`/`@include` values."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    visit,
)
from graphql.execution import Executor
from graphql.language import FragmentDefinitionNode, VariableNode

from app.codegen import source_of
from app.compat import graphql_schema
from schema.execution.pipeline import parse_document, validation_errors
from schema.execution.plans.calls import Plan
from schema.execution.plans.generate import Generator, Unsupported

# -- Documents -------------------------------------------------------------------------------


@dataclass
class DocumentPlan:
    """A query operation a plan can answer, with its plans per `@skip`/`@include` values."""

    document: DocumentNode
    operation_name: str | None  # the selected operation's own name, for metrics and logs
    directive_variables: tuple[str, ...]  # what `@skip(if: $x)`/`@include(if: $x)` read
    schema: Any  # the Strawberry schema (its configuration, scalars, resolvers' wrappers)
    _plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)

    def plan(self, executor: Executor) -> Plan | None:
        """The plan for this request's directive values; None: the standard path."""
        coerced = executor.variable_values.coerced
        key = tuple(coerced.get(name) for name in self.directive_variables)
        if key in self._plans:
            return self._plans[key]
        try:
            plan: Plan | None = Generator(self.schema, executor).compile()
        except Unsupported:
            plan = None
        self._plans[key] = plan  # at most 2^n keys for n Boolean variables; n is small
        return plan


class DocumentPlans:
    """Compiled documents of `schema` (a Strawberry schema) by (query text, operation
    name), least recently used first out.

    Given documents that parsed and validated (schema/execution/pipeline.py); one a plan cannot
    answer
    (introspection, fragment variables) is remembered as None, so the standard path gets
    it at once.
    """

    def __init__(self, schema: Any, maxsize: int = 512) -> None:
        self.schema = schema
        self.maxsize = maxsize
        self._documents: OrderedDict[tuple[str, str | None], DocumentPlan | None] = OrderedDict()

    def get(
        self, query: str, operation_name: str | None, document: DocumentNode
    ) -> DocumentPlan | None:
        key = (query, operation_name)
        documents = self._documents
        if key in documents:
            documents.move_to_end(key)
            return documents[key]
        found = _compile(self.schema, document, operation_name)
        documents[key] = found
        if len(documents) > self.maxsize:
            documents.popitem(last=False)
        return found


def _compile(schema: Any, document: DocumentNode, name: str | None) -> DocumentPlan | None:
    operation = query_operation(document, name)
    if operation is None:
        return None
    scan = _Scan()
    visit(document, scan)
    if scan.introspection or scan.fragment_variables:
        return None
    label = operation.name.value if operation.name else None
    return DocumentPlan(document, label, tuple(sorted(scan.directive_variables)), schema)


def query_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation to run, as `Executor.build` picks it, when it is a query; None for a
    mutation or subscription, or where `build` reports an error."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        found = operations[0] if len(operations) == 1 else None
    else:
        found = next((o for o in operations if o.name and o.name.value == name), None)
    return found if found is not None and found.operation is OperationType.QUERY else None


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


def plan_source(
    schema: Any, query: str, operation_name: str | None, variables: dict[str, Any]
) -> str:
    """The Python source of the plan answering `query` (`herald plan`); ValueError says why
    the document has none (it does not validate, is no query, or takes the standard path)."""
    graphql = graphql_schema(schema)
    try:
        parsed = parse_document(query, max_tokens=100_000)
    except GraphQLError as error:
        raise ValueError(error.message) from None
    errors = validation_errors(parsed, graphql, introspection=True)
    if errors:
        raise ValueError("; ".join(error.message for error in errors))
    found = DocumentPlans(schema).get(query, operation_name, parsed.document)
    if found is None:
        raise ValueError("not a query, or introspection or fragment variables: no plan")
    executor = schema.execution_context_class.build(
        graphql, found.document, None, None, variables, operation_name
    )
    if isinstance(executor, list):
        raise ValueError("; ".join(error.message for error in executor))
    plan = found.plan(executor)
    if plan is None:
        raise ValueError("the standard path answers it (an abstract type or is_type_of check)")
    return source_of(plan)
