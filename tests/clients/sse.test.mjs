// graphql-sse's own client (distinct connections mode): a campaign's progress over
// Server-Sent Events, a query over the same transport, and a document that does not validate;
// in single connection mode, which is not served, a refusal that names the mode to use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sent } from "./recorded-fetch.mjs";
import { createClient } from "graphql-sse";

const url = process.env.HERALD_URL;
const key = process.env.HERALD_KEY;
const campaign = process.env.HERALD_CAMPAIGN_ID;

const client = createClient({ url, headers: { authorization: `Bearer ${key}` } });

const PROGRESS = `
  subscription Progress($id: ID!) {
    campaignProgress(id: $id) {
      status
      stats { total pending }
    }
  }
`;

async function post(query, variables) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

test("a campaign's progress: its state at once, then each change", async () => {
  sent.length = 0;
  const events = [];
  const subscription = client.iterate({ query: PROGRESS, variables: { id: campaign } });
  for await (const event of subscription) {
    events.push(event);
    if (events.length === 1) {
      // the campaign starts: its status changes (no worker sends anything here)
      const started = await post("mutation S($id: ID!) { startCampaign(id: $id) { __typename } }", {
        id: campaign,
      });
      assert.equal(started.data.startCampaign.__typename, "StartCampaignSuccess");
    } else {
      break; // ends the subscription: the client closes its stream
    }
  }
  assert.equal(events[0].data.campaignProgress.status, "DRAFT");
  assert.notEqual(events[1].data.campaignProgress.status, "DRAFT");
  assert.equal(sent[0].accept, "text/event-stream");
});

test("a query over the event stream: one result, then the stream completes", async () => {
  const results = [];
  for await (const result of client.iterate({ query: "{ contacts { totalCount } }" })) {
    results.push(result);
  }
  assert.deepEqual(
    results.map((r) => r.data),
    [{ contacts: { totalCount: 3 } }],
  );
});

test("a document that does not validate: its errors as the stream's one result", async () => {
  const results = [];
  for await (const result of client.iterate({ query: "subscription { nothing }" })) {
    results.push(result);
  }
  assert.equal(results.length, 1);
  assert.deepEqual(
    results[0].errors.map((e) => e.extensions.code),
    ["VALIDATION_FAILED"],
  );
});

test("single connection mode: its reservation is refused, naming the mode to use", async () => {
  const answers = []; // read before the client aborts its connection
  const single = createClient({
    url,
    headers: { authorization: `Bearer ${key}` },
    singleConnection: true,
    retryAttempts: 0,
    fetchFn: async (input, init) => {
      const response = await fetch(input, init);
      answers.push({ method: init.method, body: await response.clone().json() });
      return response;
    },
  });
  let refused;
  try {
    for await (const result of single.iterate({ query: "{ version }" })) {
      assert.fail(`no result expected, got ${JSON.stringify(result)}`);
    }
  } catch (error) {
    refused = error;
  }
  assert.equal(refused?.name, "NetworkError");
  assert.equal(refused.response.status, 405);
  const [{ method, body }] = answers;
  assert.equal(method, "PUT");
  assert.equal(body.errors[0].extensions.code, "METHOD_NOT_ALLOWED");
  assert.match(body.errors[0].message, /without `singleConnection`/);
});
