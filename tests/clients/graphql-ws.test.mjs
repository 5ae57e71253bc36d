// graphql-ws, the client urql's subscriptionExchange and Apollo's GraphQLWsLink take: the
// README's setup, through a restart of the server (tests/test_clients.py restarts it once
// this client shows the first event, and says so in HERALD_SHOWN_FILE): it reconnects,
// resubscribes and follows along.
import { writeFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";

const url = process.env.HERALD_WS_URL;
const key = process.env.HERALD_KEY;
const campaignId = process.env.HERALD_CAMPAIGN_ID;

const PROGRESS = `
  subscription Progress($id: ID!) {
    campaignProgress(id: $id) { status settled }
  }
`;
const CANCEL = "mutation Cancel($id: ID!) { cancelCampaign(id: $id) { __typename } }";

// What the page would show, and when the client (re)connected.
const shown = [];
const connections = [];
const waiting = new Set();
const changed = () => waiting.forEach((wake) => wake());
const render = (progress) => {
  shown.push({ ...progress, connection: connections.length });
  if (shown.length === 1) writeFileSync(process.env.HERALD_SHOWN_FILE, "");
  changed();
};
const until = (check) =>
  new Promise((resolve) => {
    const wake = () => check() && waiting.delete(wake) && resolve();
    waiting.add(wake);
    wake();
  });

test("a subscription survives a restart of the server: it reconnects and resubscribes", { timeout: 120_000 }, async () => {
  let completed = false;
  const done = until(() => completed);

  const client = createClient({
    url, // wss://herald.example.com/graphql
    connectionParams: { Authorization: `Bearer ${key}` },
    // A restart or a dropped network closes the socket: reconnect (every attempt, however
    // it fails, and as long as it takes: at most 30 s apart), and resubscribe.
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) => new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** retries, 30_000))),
    on: { connected: () => { connections.push(Date.now()); changed(); } },
  });

  // urql:   subscriptionExchange({ forwardSubscription: (op) => ({
  //           subscribe: (sink) => ({ unsubscribe: client.subscribe(op, sink) }) }) })
  // Apollo: new GraphQLWsLink(client)
  const stop = client.subscribe(
    { query: PROGRESS, variables: { id: campaignId } },
    { next: ({ data }) => render(data.campaignProgress), error: console.error, complete: () => {} },
  );
  // The operation's end, as the client receives it.
  client.on("message", (message) => {
    if (message.type === "complete") {
      completed = true;
      changed();
    }
  });

  // when the server restarts under it, and a change comes after it has resubscribed
  await until(() => shown.some((event) => event.connection === 2));
  const response = await fetch(url.replace(/^ws/, "http"), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: CANCEL, variables: { id: campaignId } }),
  });
  assert.equal((await response.json()).data.cancelCampaign.__typename, "CancelCampaignSuccess");
  await done;
  stop();
  await client.dispose();

  // then: the state on each connection, then the change, until the stream settled
  assert.equal(connections.length, 2);
  assert.deepEqual(shown, [
    { status: "DRAFT", settled: false, connection: 1 },
    { status: "DRAFT", settled: false, connection: 2 },
    { status: "CANCELLED", settled: false, connection: 2 },
    { status: "CANCELLED", settled: true, connection: 2 },
  ]);
});
