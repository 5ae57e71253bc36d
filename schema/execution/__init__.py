"""How an operation is answered: one pipeline of request steps, then one of two executors.

- `pipeline.py`: the steps every request takes, in order of cost (size, media types,
  parameters, persisted document, variables' bounds, parse, rate limit, shape limits,
  validation, execution). Both paths below call these same functions.
- `plans/`: a query operation compiled once per document into generated functions
  (`app/codegen.py` names them and keeps their source for tracebacks and `herald plan`).
  `endpoint.py` answers such a query over HTTP in front of the middleware. A plan answers
  only when nothing goes wrong: any error, and the request takes the standard path.
- `executor.py`: the standard path's executor, graphql-core's with plain fields read
  directly. It answers what no plan does: mutations, subscriptions, introspection, unions
  and interfaces, a plan that bailed, every transport other than an HTTP query.
- `fields.py`: which fields are plain (an attribute read), one definition for both.

tests/test_differential.py holds the two paths to the same answers, errors included.
"""
