// The GraphQL-over-HTTP spec's own audit (graphql-http's `serverAudits`) against Herald:
// every MUST, SHOULD and MAY it checks must pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serverAudits } from "graphql-http";

const url = process.env.HERALD_URL;

const audits = serverAudits({ url });
const counts = { MUST: [0, 0], SHOULD: [0, 0], MAY: [0, 0] };

for (const audit of audits) {
  test(`${audit.id} ${audit.name}`, async () => {
    const result = await audit.fn();
    const level = audit.name.split(" ")[0];
    counts[level][0] += result.status === "ok" ? 1 : 0;
    counts[level][1] += 1;
    assert.equal(result.status, "ok", result.reason);
  });
}

test.after(() => {
  const line = Object.entries(counts).map(([level, [ok, all]]) => `${level} ${ok}/${all}`);
  console.log(`graphql-http audit: ${line.join(", ")} passed`);
});
