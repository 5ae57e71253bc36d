"""GraphQL over HTTP (the GraphQL-over-HTTP spec): a request's parameters, the media type
of its answer, the answer's status, and refusals as GraphQL responses.

Both paths to the schema (schema/execution/endpoint.py, schema/view.py) and the body size limit
answer
through these, so they answer alike:

- `application/graphql-response+json` to a client that prefers it (`Accept`, q-values
  included), with a 4xx status for a request error (a document that does not parse or
  validate, variables that do not coerce, a refusal by a limit);
- `application/json` to older clients, to `*/*` and without `Accept` (the spec's legacy
  rule), with 200 for any well-formed request;
- a request error has no `data` key, whatever the media type; everything is JSON, the
  refusals of HTTP's own kind too (405, 406, 413, 415, malformed requests: 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.responses import Response

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# `Accept` names only a stream (an SSE or multipart client): the view decides.
STREAM = "stream"
_STREAMS = ("text/event-stream", "multipart/mixed")
CONTENT_TYPES = {
    GRAPHQL_RESPONSE: "application/graphql-response+json; charset=utf-8",
    JSON: "application/json; charset=utf-8",
}

# Each request error's status: (as `application/graphql-response+json`, as `application/json`).
# A well-formed request answered in the legacy type gets 200, as the spec asks (the client
# cannot tell a GraphQL answer from a proxy's error page otherwise), except for the refusals
# of HTTP's own kind: a method, media type or size it does not take, or a rate.
_STATUS: dict[str, tuple[int, int]] = {
    "BAD_REQUEST": (400, 400),  # not a well-formed GraphQL-over-HTTP request
    "BATCHING_NOT_SUPPORTED": (400, 400),
    "PERSISTED_QUERY_HASH_MISMATCH": (400, 400),
    "NOT_FOUND": (404, 404),
    "METHOD_NOT_ALLOWED": (405, 405),
    "NOT_ACCEPTABLE": (406, 406),
    "REQUEST_TOO_LARGE": (413, 413),
    "URI_TOO_LONG": (414, 414),
    "UNSUPPORTED_MEDIA_TYPE": (415, 415),
    "RATE_LIMITED": (429, 429),
    "SUBSCRIPTION_OVER_HTTP": (400, 400),
    "PERSISTED_QUERY_NOT_FOUND": (404, 200),
    "PERSISTED_QUERY_NOT_ALLOWED": (403, 200),
    "PARSE_FAILED": (400, 200),
    "QUERY_TOO_LARGE": (400, 200),
    "OPERATION_NOT_FOUND": (400, 200),
    "VALIDATION_FAILED": (400, 200),  # the standard rules, and variables that do not coerce
    "VARIABLES_TOO_DEEP": (400, 200),
    "VARIABLES_TOO_LARGE": (400, 200),
    "QUERY_TOO_DEEP": (400, 200),
    "TOO_MANY_ALIASES": (400, 200),
    "TOO_MANY_REPEATS": (400, 200),
    "QUERY_TOO_COMPLEX": (400, 200),
    # An argument's value refused before execution (`@maxLength`, NUL); the same code on a
    # field's error (it has a `path`) is an execution error, answered with `data`.
    "BAD_USER_INPUT": (400, 200),
}
# A stream's caller refused before it opens (schema/streams.py). Not request errors when a
# field of a query refuses its caller: the answer has `data` then, and 200.
_CALLER_STATUS = {"UNAUTHENTICATED": (401, 401)}
_CODE_OF_STATUS = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


@lru_cache(maxsize=128)
def answer_media_type(accept: str) -> str | None:
    """The media type to answer in, from the `Accept` header (RFC 9110): each type takes the
    q of the most specific range that matches it, the highest q wins, then the type listed
    first (`application/json` for `*/*` alone). `application/json` without `Accept`; STREAM
    when only a stream is accepted; None when nothing is (406).

    Remembered per header value: clients send the same few.
    """
    if not accept.strip():
        return JSON
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = part.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        ranges.append((media.strip().lower(), q))
    best: tuple[float, int, int] | None = None
    chosen = None
    for media in (JSON, GRAPHQL_RESPONSE):  # the legacy type first: it wins a tie of ranges
        found = _quality(media, ranges)
        if found is not None and found[0] > 0 and (best is None or found > best):
            best, chosen = found, media
    if chosen is None and any(media in _STREAMS and q > 0 for media, q in ranges):
        return STREAM
    return chosen


def _quality(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int, int] | None:
    """(q, specificity, -position) of the most specific range that matches `media`."""
    specificities = {media: 2, media.split("/", 1)[0] + "/*": 1, "*/*": 0}
    found = None
    for position, (range_, q) in enumerate(ranges):
        specificity = specificities.get(range_)
        if specificity is not None and (found is None or specificity > found[1]):
            found = (q, specificity, -position)
    return found


def response_media_type(accept: str) -> str:
    """The JSON media type of an answer: a stream-only `Accept` gets the new one (its client
    takes no legacy JSON, and a refusal answered 200 would read as a stream that never
    starts), an unacceptable one the legacy type."""
    media = answer_media_type(accept)
    return GRAPHQL_RESPONSE if media in (GRAPHQL_RESPONSE, STREAM) else JSON


def is_request_error(errors: object) -> bool:
    """Errors that kept the operation from running (a refusal, a document that does not
    parse or validate, variables or arguments refused): answered without `data`. A field's
    error has a `path`: the operation ran."""
    return (
        isinstance(errors, list)
        and bool(errors)
        and all(_code(error) in _STATUS and "path" not in error for error in errors)
    )


def graphql_status(body: Mapping[str, Any], media: str) -> int:
    """An answer's status: 200 for a result (`data` present, even null), else the first
    request error's."""
    if "data" in body:
        return 200
    code = str(_code(body["errors"][0]))
    statuses = _STATUS.get(code) or _CALLER_STATUS[code]
    return statuses[0] if media == GRAPHQL_RESPONSE else statuses[1]


def refused_with_status(error: object) -> bool:
    """A request error of HTTP's own kind (a 4xx even in the legacy media type: a method, a
    rate), as opposed to the document's own errors, which legacy clients get with 200."""
    statuses = _STATUS.get(str(_code(error)))
    return statuses is not None and statuses[1] != 200


def _code(error: object) -> object:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return extensions.get("code") if isinstance(extensions, dict) else None


class Refusal(Exception):
    """A request refused before it reaches the schema, answered as a GraphQL response with
    one error, its `code`, and no data."""

    def __init__(
        self,
        message: str,
        code: str,
        headers: Mapping[str, str] | None = None,
        **extensions: object,
    ) -> None:
        super().__init__(message)
        assert code in _STATUS or code in _CALLER_STATUS
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.extensions = extensions

    @classmethod
    def of_status(cls, status: int, message: str) -> Refusal:
        """Strawberry's refusals (an HTTP status and a reason) as ours."""
        code = _CODE_OF_STATUS.get(status, "BAD_REQUEST")
        headers = {"Allow": "GET, POST"} if status == 405 else None
        return cls(message, code, headers)

    def response(self, accept: str) -> Response:
        media = response_media_type(accept)
        body = {"errors": [{"message": self.message, "extensions": self.extensions_body}]}
        return Response(
            orjson.dumps(body),
            status_code=graphql_status(body, media),
            headers=self.headers,
            media_type=CONTENT_TYPES[media],
        )

    @property
    def extensions_body(self) -> dict[str, object]:
        return {"code": self.code, **self.extensions}


def request_parameters(data: object) -> Parameters:
    """A request's parameters (the decoded JSON body, or a GET's query string decoded by
    `query_parameters`); refused when they are not a well-formed request's."""
    if isinstance(data, list):
        raise Refusal(
            "batched requests are not supported: send one operation per request",
            "BATCHING_NOT_SUPPORTED",
        )
    if not isinstance(data, dict):
        raise Refusal("the request body must be a JSON object", "BAD_REQUEST")
    get = data.get
    query, name = get("query"), get("operationName")
    variables, extensions = get("variables"), get("extensions")
    if not (
        isinstance(query, str | None)
        and isinstance(name, str | None)
        and isinstance(variables, dict | None)
        and isinstance(extensions, dict | None)
    ):  # refused, naming the first one of the wrong type
        for key, kind in _TYPES:
            _typed(data, key, kind)
    document_id = None
    if "documentId" in data or "doc_id" in data or "id" in data:
        document_id = next(
            (v for k in _DOCUMENT_IDS if (v := _typed(data, k, str)) is not None), None
        )
    sha256 = None
    if extensions is not None and "persistedQuery" in extensions:
        persisted = extensions["persistedQuery"]
        if not (
            isinstance(persisted, dict)
            and persisted.get("version") == 1
            and isinstance(sha256 := persisted.get("sha256Hash"), str)
        ):
            raise Refusal(
                "`extensions.persistedQuery` must be {version: 1, sha256Hash}", "BAD_REQUEST"
            )
    if query is None and document_id is None and sha256 is None:
        raise Refusal("No GraphQL query found in the request", "BAD_REQUEST")
    # An empty operation name is none at all (the spec, for GET).
    return Parameters(query, variables, name or None, extensions, document_id, sha256)


_TYPES = (("query", str), ("operationName", str), ("variables", dict), ("extensions", dict))
_DOCUMENT_IDS = ("documentId", "doc_id", "id")


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        noun = "an object" if kind is dict else "a string"
        raise Refusal(f"`{key}` must be {noun} or null, if provided", "BAD_REQUEST")
    return value


def query_parameters(params: Mapping[str, Any] | bytes) -> dict[str, Any]:
    """A GET's query string (raw, or as Starlette parsed it) as request parameters, the last
    of a repeated name winning as in Starlette; `variables` and `extensions` are JSON."""
    data: dict[str, Any] = (
        dict(parse_qsl(params.decode("latin-1"), keep_blank_values=True))
        if isinstance(params, bytes)
        else dict(params)
    )
    for key in ("variables", "extensions"):
        if key in data:  # empty: not given
            data[key] = decode_json(data[key], f"`{key}`") if data[key] else None
    return data


def decode_json(text: str | bytes, what: str = "request body") -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Refusal(f"Unable to parse {what} as JSON", "BAD_REQUEST") from None


@dataclass(slots=True)
class Parameters:
    """A GraphQL-over-HTTP request's parameters, its document named by text, id or hash."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None = None  # `documentId` (the spec), Relay's `doc_id` or `id`
    sha256: str | None = None  # Apollo's `extensions.persistedQuery.sha256Hash`
