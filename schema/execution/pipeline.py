"""The steps of a request, in the order every path takes them, one function each.

Strawberry's view (schema/view.py, with the extensions of schema/limits/) and the planned
path (schema/execution/endpoint.py) call the same functions, so they accept and refuse the
same requests, in order of cost:

1. body size: the request's `BodyLimit` (smaller without a key), `declared_too_large`, then
   `StreamedSize` as the body arrives (app/http/limits.py);
2. media types: the body's, `json_media_type`; the answer's, `answer_media_type`
   (app/http/graphql.py: 406 when `Accept` takes no JSON);
3. the request's parameters, a well-formed GraphQL-over-HTTP request's:
   `request_parameters` (app/http/graphql.py; batches refused);
4. a document named by id or hash: `PersistedDocuments.document` (app/http/persisted.py: no
   round trip for a hash this process knows, one Redis read for another);
5. variables' depth and number of values: `variables_error`, before anything reads them;
   then what this process already knows, from memory: a rate limit refusal
   (`known_rate_limit`, schema/limits/: a window found full stays full until its oldest
   request leaves it), and the shape refusal the same document got before (`known_refusal`);
6. parse under the token limit: `parse_request_document`, cached by the document's text
   (only documents that pass steps 8 and 9 stay; a large new one is parsed off the event
   loop); the operation to run, `select_operation` (and no mutation over GET: `method_error`);
7. rate limit: `take_rate_limit` (schema/limits/), one Redis round trip;
8. shape limits (depth, aliases, repeats, cost, String arguments' `@maxLength` and NUL):
   `limit_error` (schema/limits/);
9. validation: `validation_errors`, cached with the parsed document; a document registered
   by hash is remembered once it validates (`PersistedDocuments.remember`);
10. execution under the time limit.

A refusal costs no more than the steps before it: a caller whose window is used costs
neither a parse nor a round trip, a document refused before costs no parse, a document that
does not parse costs no round trip, a document over a shape limit is never validated (the
standard rules take most of a second over 700 repeats of one field).
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    Lexer,
    OperationDefinitionNode,
    OperationType,
    Source,
    Token,
    parse,
    specified_rules,
)
from graphql.language.parser import Parser
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.schema import validate_document

from app.config import Settings
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


def variables_error(variables: object, settings: Settings) -> GraphQLError | None:
    """The refusal of variables nested too deep, holding too many values, or a list over
    twice as long as any argument takes; None if within.

    A client error with a code, like the shape limits; the walk stops at the first level
    over a bound, so a refusal costs little more than the body's decoding did. Before
    anything reads them, and before the permission checks, which come with execution:
    graphql-core coerces a list item by item in one piece (75,000 one-field rows fit in
    1 MB and took most of a second). The longest list an argument takes is an import's
    rows (`Settings.import_max_rows`, which bounds every list of ids too); a list up to
    twice that is left to the mutation, which answers it with its typed error.
    """
    max_items = 2 * settings.import_max_rows
    excess = json_excess(variables, VARIABLES_MAX_DEPTH, VARIABLES_MAX_VALUES, max_items)
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
    if excess == "items":
        return GraphQLError(
            f"a list in the variables holds more than {max_items} items",
            extensions={"code": "VARIABLES_TOO_LARGE"},
        )
    return None


@dataclass(eq=False, slots=True)
class ParsedDocument:
    document: DocumentNode
    # Validation errors per (schema, introspection allowed): they live and go with the parse.
    errors: dict[tuple[GraphQLSchema, bool], list[GraphQLError]] = field(default_factory=dict)


class _Documents:
    """Parsed documents by text, least recently used first out.

    A document stays only once it has passed the shape limits and validation
    (`forget_document` drops the others): a parse tree is thousands of objects that live
    as long as it is cached, and every full garbage collection walks them all. A flood of
    refused documents, each new, used to fill the cache with 512 large trees, and each full
    collection then stopped the process for about half a second. The text each entry keeps
    is bounded in all, so a few large documents cannot hold much memory either.
    """

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.chars = 0
        self._entries: OrderedDict[tuple[str, int], ParsedDocument] = OrderedDict()

    def cached(self, query: str, max_tokens: int) -> ParsedDocument | None:
        key = (query, max_tokens)
        parsed = self._entries.get(key)
        if parsed is not None:
            self._entries.move_to_end(key)
        return parsed

    def keep(self, query: str, max_tokens: int, document: DocumentNode) -> ParsedDocument:
        parsed = ParsedDocument(document)
        if len(query) <= self.max_chars:
            self._entries[(query, max_tokens)] = parsed
            self.chars += len(query)
            while len(self._entries) > self.max_entries or self.chars > self.max_chars:
                (old, _), _ = self._entries.popitem(last=False)
                self.chars -= len(old)
        return parsed

    def forget(self, query: str, max_tokens: int) -> None:
        if self._entries.pop((query, max_tokens), None) is not None:
            self.chars -= len(query)


_documents = _Documents(max_entries=512, max_chars=4_000_000)


def parse_unlinked(query: str, max_tokens: int) -> DocumentNode:
    """graphql-core's `parse`, its tokens unlinked once it ends.

    The lexer chains every token to the next and back, cycles that reference counting cannot
    free: every parse left its tokens to the cyclic garbage collector, and a syntax error
    the tree built so far (its traceback holds the parser's frames). During a flood of large
    new documents a collection freed 86,000 objects at a time and held the process 130 ms,
    about 8 ms a request. Unlinked, and the error without those frames, they go with their
    last reference. Nothing reads the chain after the parse: a node's location keeps its
    first and last token, and their offsets.
    """
    source = Source(query)
    lexer = Lexer(source)
    try:
        return Parser(source, max_tokens=max_tokens, lexer=lexer).parse_document()
    except GraphQLError as error:
        raise error.with_traceback(None) from None  # without the parser's frames
    except RecursionError:
        pass  # graphql-core's own error, from its `parse`, outside this handler
    finally:
        token: Token | None = lexer.token
        while token is not None:
            previous = token.prev
            token.prev = token.next = None
            token = previous
    return parse(query, max_tokens=max_tokens)


def parse_document(query: str, max_tokens: int) -> ParsedDocument:
    """The document parsed under the token limit; raises GraphQLError when it does not parse.

    Cached by its text: clients send the same few documents again and again.
    """
    parsed = _documents.cached(query, max_tokens)
    if parsed is None:
        parsed = _documents.keep(query, max_tokens, parse_unlinked(query, max_tokens))
    return parsed


# Past this size a new document is parsed off the event loop (4 to 6 µs a token: 700
# repeated fields take 4 ms, 1,000 tokens of repeated selections 4.5 ms).
PARSE_OFF_LOOP_CHARS = 4_096
# One parse at a time: the thread only lends the loop the interpreter between its steps.
_parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-parse")


class _ShortSwitches:
    """While parses are on the thread, the interpreter switches threads every 1 ms rather
    than every 5 (Python's `sys.getswitchinterval()`), so the event loop gets it back sooner:
    during a flood of large new documents a probe's p50 halved and its p99 fell from 58-93
    to 43-51 ms, for 6% more CPU per parsed request. The process's own interval comes back
    with the last parse."""

    def __init__(self) -> None:
        self.parsing = 0
        self.restore = 0.0

    def __enter__(self) -> None:
        if self.parsing == 0:
            self.restore = sys.getswitchinterval()
            sys.setswitchinterval(0.001)
        self.parsing += 1

    def __exit__(self, *_: object) -> None:
        self.parsing -= 1
        if self.parsing == 0:
            sys.setswitchinterval(self.restore)


_short_switches = _ShortSwitches()


async def parse_request_document(query: str, max_tokens: int) -> ParsedDocument:
    """`parse_document` for a request: a large new document is parsed on a thread of its own.

    graphql-core's parser is pure Python and runs in one piece: on the event loop, a flood
    of large new documents (each refused after its parse) made every other request wait
    behind several parses at each of its own steps. On the thread, the loop takes the
    interpreter back within a switch interval whenever it has work.
    """
    parsed = _documents.cached(query, max_tokens)
    if parsed is not None:
        return parsed
    if len(query) < PARSE_OFF_LOOP_CHARS:
        document = parse_unlinked(query, max_tokens)
    else:
        loop = asyncio.get_running_loop()
        with _short_switches:
            document = await loop.run_in_executor(
                _parser, partial(parse_unlinked, query, max_tokens)
            )
    return _documents.keep(query, max_tokens, document)


def forget_document(query: str, max_tokens: int) -> None:
    """Drop a document refused by the shape limits or validation from the parse cache."""
    _documents.forget(query, max_tokens)


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
