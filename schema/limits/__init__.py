"""Query limits: variables, tokens, depth, aliases, cost (page sizes multiply), time, rate.

The limits come from Settings at request time, so one schema serves any configuration; the
variables' bounds are constants of schema/execution/pipeline.py. Refusals are client errors with a
code (VARIABLES_TOO_DEEP, VARIABLES_TOO_LARGE, QUERY_TOO_LARGE, QUERY_TOO_DEEP,
TOO_MANY_ALIASES, TOO_MANY_REPEATS, QUERY_TOO_COMPLEX, BAD_USER_INPUT for a String argument
over its declared `@maxLength` or holding a NUL, TIMEOUT, RATE_LIMITED, and
SUBSCRIPTION_OVER_HTTP for a subscription sent where nothing can stream it: a client
accepting JSON only), returned with nothing executed, and, but for TIMEOUT and
BAD_USER_INPUT (`data: null`), no data (HTTP statuses: app/http/graphql.py). They are
steps of the request pipeline (schema/execution/pipeline.py), taken in its order on every
path.

  - shape.py:      depth, aliases, repeats and cost, measured in one walk of the operation
                   that also reads every String argument (maximum length, NUL)
  - refusals.py:   shape refusals remembered per document, given before any parse
  - extensions.py: VariableLimits and QueryLimits (the standard path's steps, the rate
                   limit among them), the planned path's Handoff
  - errors.py:     the refusals
"""

from schema.limits.errors import LimitError, QueryTimeoutError, RateLimitedError
from schema.limits.extensions import (
    HANDOFF,
    REMEMBER,
    Handoff,
    QueryLimits,
    VariableLimits,
    handoff_of,
    handoff_of_scope,
    known_rate_limit,
    parse_steps,
    rate_limit,
    remember_document,
    shape_and_validation,
    take_rate_limit,
)
from schema.limits.refusals import known_refusal
from schema.limits.shape import Measure, check_measure, limit_error, measure_operation

__all__ = [
    "HANDOFF",
    "REMEMBER",
    "Handoff",
    "LimitError",
    "Measure",
    "QueryLimits",
    "QueryTimeoutError",
    "RateLimitedError",
    "VariableLimits",
    "check_measure",
    "handoff_of",
    "handoff_of_scope",
    "known_rate_limit",
    "known_refusal",
    "limit_error",
    "measure_operation",
    "parse_steps",
    "rate_limit",
    "remember_document",
    "shape_and_validation",
    "take_rate_limit",
]
