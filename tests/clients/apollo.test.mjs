// Apollo Client 4 with automatic persisted queries (its PersistedQueryLink, node's SHA-256).
import { test } from "node:test";
import assert from "node:assert/strict";
import { sent } from "./recorded-fetch.mjs";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { createHash } from "node:crypto"; // in a browser: crypto.subtle.digest

const url = process.env.HERALD_URL;
const key = process.env.HERALD_KEY;

const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new PersistedQueryLink({
    sha256: (text) => createHash("sha256").update(text).digest("hex"),
  }).concat(new HttpLink({ uri: url, headers: { authorization: `Bearer ${key}` } })),
});

const CONTACTS = gql`
  query Contacts($first: Int) {
    contacts(first: $first) {
      totalCount
    }
  }
`;

const CREATE_CONTACT = gql`
  mutation CreateContact($phone: String!) {
    createContact(input: { phone: $phone }) {
      __typename
      ... on CreateContactSuccess {
        contact {
          id
          phone
        }
      }
      ... on InvalidPhoneError {
        message
        phone
      }
    }
  }
`;

test("a query: the hash first, the text once the server asks for it, then the hash alone", async () => {
  sent.length = 0;
  const first = await client.query({ query: CONTACTS, variables: { first: 5 } });
  assert.equal(typeof first.data.contacts.totalCount, "number");
  const again = await client.query({
    query: CONTACTS,
    variables: { first: 6 },
    fetchPolicy: "network-only",
  });
  assert.equal(again.data.contacts.totalCount, first.data.contacts.totalCount);
  // hash only (PERSISTED_QUERY_NOT_FOUND), hash and text, then the hash it now knows
  assert.deepEqual(
    sent.map(({ body }) => [typeof body.query, typeof body.extensions.persistedQuery.sha256Hash]),
    [
      ["undefined", "string"],
      ["string", "string"],
      ["undefined", "string"],
    ],
  );
});

test("a mutation answers with its typed error branch, or its success", async () => {
  const refused = await client.mutate({
    mutation: CREATE_CONTACT,
    variables: { phone: "not a phone" },
  });
  assert.equal(refused.data.createContact.__typename, "InvalidPhoneError");
  assert.equal(refused.data.createContact.phone, "not a phone");

  const created = await client.mutate({
    mutation: CREATE_CONTACT,
    variables: { phone: "+33612345678" },
  });
  assert.equal(created.data.createContact.__typename, "CreateContactSuccess");
  assert.equal(created.data.createContact.contact.phone, "+33612345678");
});

test("a hash the server never saw, with no text to follow, is PERSISTED_QUERY_NOT_FOUND", async () => {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json,application/json;q=0.9",
      authorization: `Bearer ${key}`,
    },
    body: JSON.stringify({
      extensions: { persistedQuery: { version: 1, sha256Hash: "0".repeat(64) } },
    }),
  });
  assert.equal(response.status, 404);
  assert.match(response.headers.get("content-type"), /^application\/graphql-response\+json/);
  assert.deepEqual(await response.json(), {
    errors: [
      { message: "PersistedQueryNotFound", extensions: { code: "PERSISTED_QUERY_NOT_FOUND" } },
    ],
  });
});

// Subscriptions through the same HttpLink: Apollo's multipart subscription protocol.
const PROGRESS = gql`
  subscription Progress($id: ID!) {
    campaignProgress(id: $id) {
      status
    }
  }
`;

test("a subscription over HttpLink streams as multipart, its hash first as any operation", async () => {
  sent.length = 0;
  const campaign = process.env.HERALD_CAMPAIGN_ID;
  const first = await new Promise((resolve, reject) => {
    const subscription = client.subscribe({ query: PROGRESS, variables: { id: campaign } }).subscribe({
      next(result) {
        subscription.unsubscribe(); // the first event is enough: the client closes the stream
        resolve(result);
      },
      error: reject,
    });
  });
  assert.equal(first.data.campaignProgress.status, "DRAFT");
  // hash only (PERSISTED_QUERY_NOT_FOUND, as JSON), then hash and text (the stream)
  assert.deepEqual(
    sent.map(({ body }) => [typeof body.query, typeof body.extensions.persistedQuery.sha256Hash]),
    [
      ["undefined", "string"],
      ["string", "string"],
    ],
  );
  assert.ok(sent.every(({ accept }) => accept.includes("subscriptionSpec=1.0")));
});
