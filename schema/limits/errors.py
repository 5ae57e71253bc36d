"""The refusals a limit answers with: client errors with a code, never masked."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class LimitError(GraphQLError):
    """A request refused by a limit; always the client's to fix, never masked."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


class BadArgumentError(LimitError):
    """A String argument's value refused by the shape limits (over its declared maximum
    length, or holding a NUL). `in_variables` when the value was a variable's: the document
    itself is fine, and stays parsed for the next request's values."""

    def __init__(self, message: str, argument: str, in_variables: bool) -> None:
        super().__init__(message, "BAD_USER_INPUT", argument=argument)
        self.in_variables = in_variables


class QueryTimeoutError(LimitError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the operation took longer than {seconds:g} s and was stopped; nothing was written",
            "TIMEOUT",
        )


class RateLimitedError(LimitError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests: retry in {retry_after} s", "RATE_LIMITED", retryAfter=retry_after
        )


class SubscriptionOverHttpError(LimitError):
    def __init__(self) -> None:
        super().__init__(
            "a subscription needs a stream, and this request accepts JSON only: subscribe on "
            "/graphql over WebSocket (graphql-transport-ws), over Server-Sent Events "
            "(graphql-sse: Accept: text/event-stream) or as a multipart response "
            '(Accept: multipart/mixed;subscriptionSpec="1.0")',
            "SUBSCRIPTION_OVER_HTTP",
        )
