// urql with its defaults: queries as GET when they fit in a URL, with its wide `Accept`
// (JSON, multipart and event streams), mutations POSTed; queries answered by their plan.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sent } from "./recorded-fetch.mjs";
import { Client, fetchExchange, gql } from "@urql/core";

const url = process.env.HERALD_URL;
const key = process.env.HERALD_KEY;

const client = new Client({
  url,
  exchanges: [fetchExchange],
  fetchOptions: { headers: { authorization: `Bearer ${key}` } },
});

// Queries answered by their compiled plan, from the server's /metrics (open to loopback).
async function answeredByPlan() {
  const text = await (await fetch(new URL("/metrics", url))).text();
  const line = text.split("\n").find((l) => l.startsWith('herald_planned_queries_total{outcome="answered"}'));
  return line ? Number(line.split(" ")[1]) : 0;
}

const CONTACTS = gql`
  query Contacts($first: Int) {
    contacts(first: $first) {
      totalCount
      nodes {
        id
        phone
      }
    }
  }
`;

const CREATE_CATEGORY = gql`
  mutation CreateCategory($name: String!) {
    createCategory(input: { name: $name }) {
      __typename
      ... on CreateCategorySuccess {
        category {
          id
          name
        }
      }
      ... on DuplicateError {
        message
        field
      }
    }
  }
`;

test("a query goes as GET with urql's Accept and is answered by its plan", async () => {
  const before = await answeredByPlan();
  sent.length = 0;
  const result = await client.query(CONTACTS, { first: 3 }).toPromise();
  assert.equal(result.error, undefined);
  assert.equal(typeof result.data.contacts.totalCount, "number");
  assert.deepEqual(sent.map((r) => r.method), ["GET"]);
  assert.match(sent[0].accept, /multipart\/mixed/);
  assert.match(sent[0].accept, /text\/event-stream/);
  assert.equal((await answeredByPlan()) - before, 1);
});

test("a mutation is POSTed and answers with its typed error branch", async () => {
  sent.length = 0;
  const first = await client.mutation(CREATE_CATEGORY, { name: "urql" }).toPromise();
  const second = await client.mutation(CREATE_CATEGORY, { name: "urql" }).toPromise();
  assert.deepEqual(sent.map((r) => r.method), ["POST", "POST"]);
  assert.equal(first.data.createCategory.__typename, "CreateCategorySuccess");
  assert.equal(second.data.createCategory.__typename, "DuplicateError");
  assert.equal(second.data.createCategory.field, "name");
});
