"""Error reporting: unexpected errors get an id, a logged stack and (in prod) a masked message.

Client errors pass through untouched: parse and validation errors, bad variables, and any
GraphQLError raised on purpose (BAD_USER_INPUT, UNAUTHENTICATED, FORBIDDEN, the limits).
PostgreSQL's data exceptions (a NUL character, a value too long) are the client's input
too. Anything else is unexpected: the client sees "Internal server error" with an
`errorId`, the log has the stack under the same id.

This runs from `HeraldSchema.process_errors` rather than Strawberry's MaskErrors extension:
an exception escaping an extension hook (COMMIT failing when PostgreSQL dies) becomes a
result only after every `on_operation` hook has exited, so MaskErrors never sees it, while
`process_errors` sees every error list before it is returned, whatever the path.
"""

from __future__ import annotations

import logging
import re
import uuid

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.types import ExecutionContext

from app.config import Settings
from app.db.engine import sqlstate

logger = logging.getLogger("herald.errors")

MASKED_MESSAGE = "Internal server error"


def _root_cause(error: GraphQLError) -> BaseException | None:
    cause: BaseException | None = error.original_error
    while isinstance(cause, GraphQLError) and cause.original_error is not None:
        cause = cause.original_error
    return cause


def is_unexpected(error: GraphQLError) -> bool:
    cause = _root_cause(error)
    if cause is None or isinstance(cause, GraphQLError):
        return False
    # Validation and variable-coercion errors wrap the scalar's exception but point at the
    # document (nodes, no path); a failing hook's exception points nowhere.
    return error.path is not None or not error.nodes


# What a refused value was, by SQLSTATE, in words that reveal nothing of the database.
_REFUSALS = {
    "22001": "a text value is too long",
    "22003": "a number is out of range",
    "22021": "a text value holds a character that cannot be stored (such as NUL)",
    "22P05": "a JSON value holds a character that cannot be stored (such as \\u0000)",
}


def _refused_value(error: GraphQLError) -> GraphQLError | None:
    """PostgreSQL's data exceptions (SQLSTATE class 22: a NUL character, a value too long
    or out of range) are the client's input, caught by the database rather than by
    validation: a client error, and the request has been rolled back as a whole. Neither
    PostgreSQL's message nor its code reaches the client."""
    code = sqlstate(_root_cause(error))
    if code is None or not code.startswith("22"):
        return None
    reason = _REFUSALS.get(code, "a value cannot be stored")
    return GraphQLError(
        f"{reason}; nothing was written",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "BAD_USER_INPUT"},
    )


# A quoted value (kept as it is), or one of Python's words for a JSON literal.
_PYTHON_WORDS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\b(None|True|False)\b")
_JSON_WORDS = {"None": "null", "True": "true", "False": "false"}


def _json_words(message: str) -> str:
    """graphql-core words the values of variables and literals in Python (`None`, `True`):
    the client sent JSON, so they say `null` and `true`."""
    return _PYTHON_WORDS.sub(lambda m: _JSON_WORDS[m[1]] if m[1] else m[0], message)


def _client_code(error: GraphQLError) -> str:
    if isinstance(error, GraphQLSyntaxError):
        return "QUERY_TOO_LARGE" if "tokens. Parsing aborted" in error.message else "PARSE_FAILED"
    if error.path is None and error.nodes:
        return "VALIDATION_FAILED"
    # Raised on purpose while executing (e.g. an argument a scalar could not parse).
    return "BAD_USER_INPUT"


def report_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    """Log and (when configured) mask, replacing list items in place: the same list is
    the one returned to the client."""
    context = getattr(execution_context, "context", None)
    operation = getattr(execution_context, "operation_name", None)
    report(errors, getattr(context, "settings", None), operation)


def report(errors: list[GraphQLError], settings: Settings | None, operation: str | None) -> None:
    """`report_errors` for errors found outside an execution (a stream's steps before it
    opens, schema/streams.py), under the request's settings."""
    mask = settings is not None and settings.mask_errors_enabled
    hide_schema = settings is not None and not settings.introspection_enabled
    operation = operation or "-"
    for index, error in enumerate(errors):
        extensions = dict(error.extensions or {})
        if not is_unexpected(error):
            if "code" not in extensions:
                error.extensions = {**extensions, "code": _client_code(error)}
            if error.path is None:  # validation's and variables' messages
                error.message = _json_words(error.message)
            if hide_schema and "Did you mean" in error.message:
                # Suggestions would reveal field names with introspection off.
                error.message = error.message.split("Did you mean")[0].strip()
            continue
        if (refused := _refused_value(error)) is not None:
            errors[index] = refused
            continue
        error_id = uuid.uuid4().hex[:16]
        path = ".".join(map(str, error.path)) if error.path else "-"
        logger.error(
            "unexpected error %s in operation %s at %s: %s",
            error_id,
            operation,
            path,
            error.message,
            exc_info=_root_cause(error),
        )
        extensions.update(code="INTERNAL_SERVER_ERROR", errorId=error_id)
        if mask:
            errors[index] = GraphQLError(
                MASKED_MESSAGE,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
            )
        else:
            error.extensions = extensions
