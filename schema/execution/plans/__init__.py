"""Operation plans: a query answered without graphql-core's field-by-field execution loop.

graphql-core spends microseconds on every field of a response (a `Path`, a resolve info,
`complete_value`'s type dispatch, an awaitable check), and a small page is mostly that
overhead. A plan is compiled once per document, operation and values of the variables
that `@skip`/`@include` read:

- graphql-core itself collects every selection set (aliases, fragments, inline fragments,
  directives, merging), so the plan answers the same fields in the same order;
- each selection set becomes a generated Python function: a plain field (no resolver, no
  field extension, no arguments) is an attribute read, a leaf is serialized inline when
  its value is what the scalar passes through unchanged (a `str` for String and ID, an
  `int` in range, a `bool`, an enum member seen before) and by the type's own
  `coerce_output_value` otherwise;
- any other field (resolvers, permissions, `Cached`, arguments) is called with the resolve
  info, path and arguments that graphql-core's executor builds: through Strawberry's
  wrapper with its extensions, or, for a resolver whose only extensions are permission
  checks and `Cached`, through one coroutine doing the same steps (scalar and enum
  arguments converted once per values); awaitable results are gathered in waves, so
  sibling resolvers of a list still batch in their DataLoaders.

A plan answers only when nothing goes wrong. Any exception, a null in a non-null position,
a value a scalar refuses, a list that is not a list: `Bail`, and the caller runs the whole
operation through the standard path, which produces the exact errors (queries write
nothing, so running one again is safe). Compiled only for query operations over object
types; mutations, subscriptions, introspection (`__schema`, `__type`), unions, interfaces,
types with an `is_type_of` check and fragment variables stay on the standard path.

A document reaches its plan only through the steps every request takes, in their order
(schema/execution/pipeline.py): parse, rate limit, shape limits, validation; a plan changes how the
fields are resolved, never which requests are answered.
"""

from schema.execution.plans.calls import Bail, batched, execute
from schema.execution.plans.documents import DocumentPlan, DocumentPlans, query_operation

__all__ = ["Bail", "DocumentPlan", "DocumentPlans", "batched", "execute", "query_operation"]
