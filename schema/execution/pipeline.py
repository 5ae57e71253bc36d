"""The steps of a request, in the order every path takes them, one function each.

Strawberry's view (schema/view.py, with the extensions of schema/limits/) and the planned
path (schema/execution/endpoint.py) call the same functions, so they accept and refuse the same
requests,
in order of cost:

1. body size: `declared_too_large`, then `StreamedSize` as the body arrives (app/http/limits.py);
2. media types: the body's, `json_media_type`; the answer's, `answer_media_type`
   (app/http/graphql.py: 406 when `Accept` takes no JSON);
3. the request's parameters, a well-formed GraphQL-over-HTTP request's:
   `request_parameters` (app/http/graphql.py; batches refused);
4. a document named by id or hash: `PersistedDocuments.document` (app/http/persisted.py: no
   round trip for a hash this process knows, one Redis read for another);
5. variables' depth and number of values: `variables_error`, before anything reads them;
   then a rate limit refusal this process already knows, from memory (`known_rate_limit`,
   schema/limits/: a window found full stays full until its oldest request leaves it);
6. parse under the token limit: `parse_document`, cached by the document's text; the
   operation to run, `select_operation` (and no mutation over GET: `method_error`);
7. rate limit: `take_rate_limit` (schema/limits/), one Redis round trip;
8. shape limits (depth, aliases, repeats, cost): `limit_error` (schema/limits/);
9. validation: `validation_errors`, cached with the parsed document; a document registered
   by hash is remembered once it validates (`PersistedDocuments.remember`);
10. execution under the time limit.

A refusal costs no more than the steps before it: a caller whose window is used costs
neither a parse nor a round trip, a document that does not parse costs no round trip, a
document over a shape limit is never validated (the standard rules take most of a second
over 700 repeats of one field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    specified_rules,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.schema import validate_document

from app.inputs import json_excess

# The deepest variables this schema takes nest 8 levels (an import's rows' attributes, 4 deep
# themselves). Far deeper ones reach the limits of what reads them: orjson encodes 254 levels
# at most (the shape limits' cache key), and coercion recurses per level.
VARIABLES_MAX_DEPTH = 32
# The body size bounds the bytes; this bounds the values whatever the transport, at twice
# what a 10,000-row import of short attributes holds in a 1 MB body.
VARIABLES_MAX_VALUES = 250_000

_RULES: tuple[type[ASTValidationRule], ...] = tuple(specified_rules)
_RULES_WITHOUT_INTROSPECTION = (*_RULES, NoSchemaIntrospectionCustomRule)


@lru_cache(maxsize=64)
def json_media_type(content_type: str) -> bool:
    """A body sent as JSON: the header's media type, parameters aside, is `application/json`.

    Compared as sent, as Strawberry's own check (which runs after this one in the view) does.
    Remembered per header value: clients send the same few, and parsing one costs 3 µs (an
    `email.message.Message`), 3% of a small page.
    """
    media_type, _ = parse_content_type(content_type)
    return media_type == "application/json"


def variables_error(variables: object) -> GraphQLError | None:
    """The refusal of variables nested too deep or holding too many values; None if within.

    A client error with a code, like the shape limits; the walk stops at the first level
    over a bound, so a refusal costs little more than the body's decoding did.
    """
    excess = json_excess(variables, VARIABLES_MAX_DEPTH, VARIABLES_MAX_VALUES)
    if excess == "depth":
        return GraphQLError(
            f"variables nest deeper than {VARIABLES_MAX_DEPTH} levels",
            extensions={"code": "VARIABLES_TOO_DEEP"},
        )
    if excess == "entries":
        return GraphQLError(
            f"variables hold more than {VARIABLES_MAX_VALUES} values",
            extensions={"code": "VARIABLES_TOO_LARGE"},
        )
    return None


@dataclass(eq=False, slots=True)
class ParsedDocument:
    document: DocumentNode
    # Validation errors per (schema, introspection allowed): they live and go with the parse.
    errors: dict[tuple[GraphQLSchema, bool], list[GraphQLError]] = field(default_factory=dict)


@lru_cache(maxsize=512)
def parse_document(query: str, max_tokens: int) -> ParsedDocument:
    """The document parsed under the token limit; raises GraphQLError when it does not parse.

    Cached by its text: clients send the same few documents again and again.
    """
    return ParsedDocument(parse(query, max_tokens=max_tokens))


def select_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    """The operation the request names (GraphQL's GetOperation): the only one when it names
    none; a request error when there is no such operation, or several and no name."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        found = next((o for o in operations if o.name and o.name.value == name), None)
        if found is None:
            raise _operation_error(f"Unknown operation named '{name}'.")
        return found
    if len(operations) == 1:
        return operations[0]
    if not operations:
        raise _operation_error("Must provide an operation.")
    raise _operation_error("Must provide operation name if query contains multiple operations.")


def _operation_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "OPERATION_NOT_FOUND"})


def method_error(operation: OperationDefinitionNode, method: str) -> GraphQLError | None:
    """A mutation sent over GET, which must change nothing (the spec: 405); None if fine."""
    if method == "GET" and operation.operation is OperationType.MUTATION:
        return GraphQLError(
            "mutations are not allowed over GET: send them with POST",
            extensions={"code": "METHOD_NOT_ALLOWED"},
        )
    return None


def validation_errors(
    parsed: ParsedDocument, schema: GraphQLSchema, introspection: bool
) -> list[GraphQLError]:
    """The standard rules' errors (and introspection's, when it is off), computed once."""
    key = (schema, introspection)
    errors = parsed.errors.get(key)
    if errors is None:
        rules = _RULES if introspection else _RULES_WITHOUT_INTROSPECTION
        errors = parsed.errors[key] = validate_document(schema, parsed.document, rules)
    return errors
