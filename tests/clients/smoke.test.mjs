// The plainest client of all: fetch, as the GraphQL-over-HTTP spec describes a request.
import { test } from "node:test";
import assert from "node:assert/strict";

const url = process.env.HERALD_URL;
const key = process.env.HERALD_KEY;

test("a query POSTed as JSON is answered", async () => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: "{ __typename }" }),
  });
  assert.equal(response.status, 200);
  assert.deepEqual((await response.json()).data, { __typename: "Query" });
});
