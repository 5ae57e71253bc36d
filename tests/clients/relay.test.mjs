// Relay: a query with fragments and `node(id:)`, its records normalized by global id. The
// artifacts are relay-compiler's, from relay/documents.js (`npm run relay` rewrites them).
import { test } from "node:test";
import assert from "node:assert/strict";
import relay from "relay-runtime";
import ContactsQuery from "./relay/__generated__/relayContactsQuery.graphql.js";
import NodeQuery from "./relay/__generated__/relayNodeQuery.graphql.js";

const { Environment, Network, RecordSource, Store, createOperationDescriptor, fetchQuery } = relay;

const url = process.env.HERALD_URL;
const key = process.env.HERALD_KEY;

async function post(query, variables = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

const environment = new Environment({
  network: Network.create((params, variables) => post(params.text, variables)),
  store: new Store(new RecordSource()),
});
const records = () => environment.getStore().getSource();

// A category and a contact: the first of each, so both have the numeric key 1.
const { data: made } = await post(`
  mutation {
    createCategory(input: { name: "Relay VIP" }) {
      ... on CreateCategorySuccess { category { id databaseId } }
    }
  }`);
const category = made.createCategory.category;
const { data: added } = await post(
  `mutation ($category: ID!) {
    createContact(input: { phone: "+33612340001", name: "Ana", categoryIds: [$category] }) {
      ... on CreateContactSuccess { contact { id databaseId } }
    }
  }`,
  { category: category.id },
);
const contact = added.createContact.contact;

test("a contact and a category of the same key are two records, each under its global id", async () => {
  assert.equal(contact.databaseId, category.databaseId);
  assert.notEqual(contact.id, category.id);

  await fetchQuery(environment, ContactsQuery, { first: 5 }).toPromise();

  const stored = records().get(contact.id);
  assert.equal(stored.__typename, "Contact");
  assert.equal(stored.phone, "+33612340001");
  assert.deepEqual(stored.categories, { __refs: [category.id] });
  assert.equal(records().get(category.id).__typename, "Category");
  assert.equal(records().get(category.id).name, "Relay VIP");
  // the query's own data holds fragment references, resolved through those records
  const operation = createOperationDescriptor(ContactsQuery, { first: 5 });
  const { data } = environment.lookup(operation.fragment);
  assert.equal(data.contacts.nodes.length, 1);
  assert.equal(data.contacts.nodes[0].__id, contact.id);
});

test("node(id:) refetches into the same record, which every query then reads", async () => {
  const { data } = await post(
    `mutation ($id: ID!) { updateContact(id: $id, input: { name: "Ana B." }) { __typename } }`,
    { id: contact.id },
  );
  assert.equal(data.updateContact.__typename, "UpdateContactSuccess");

  await fetchQuery(environment, NodeQuery, { id: contact.id }).toPromise();

  const operation = createOperationDescriptor(NodeQuery, { id: contact.id });
  const node = environment.lookup(operation.fragment).data.node;
  assert.equal(node.__typename, "Contact");
  // the aliased fragment's reference: the record of the contact's global id
  assert.equal(node.relayContact_contact.__id, contact.id);
  assert.equal(records().get(contact.id).name, "Ana B.");
  // the contacts list, fetched before, shows the new name: one record, not a copy
  const list = createOperationDescriptor(ContactsQuery, { first: 5 });
  const [listed] = environment.lookup(list.fragment).data.contacts.nodes;
  assert.equal(records().get(listed.__id).name, "Ana B.");
});

test("node(id:) of an id that names nothing is null, with no error", async () => {
  const unknown = Buffer.from("Contact:999999").toString("base64");
  const data = await fetchQuery(environment, NodeQuery, { id: unknown }).toPromise();
  assert.equal(data.node, null);
});
