// The documents relay.test.mjs runs, as Relay's compiler reads them: `npm run relay` writes
// their artifacts to __generated__/ (committed: the test needs no compile step). This file
// is never run; an application would write these tags beside its components.
import { graphql } from "relay-runtime";

graphql`
  fragment relayCategory_category on Category {
    id
    databaseId
    name
  }
`;

graphql`
  fragment relayContact_contact on Contact {
    id
    databaseId
    phone
    name
    categories {
      ...relayCategory_category
    }
  }
`;

graphql`
  query relayContactsQuery($first: Int!) {
    contacts(first: $first) {
      nodes {
        ...relayContact_contact
      }
    }
  }
`;

graphql`
  query relayNodeQuery($id: ID!) {
    node(id: $id) {
      __typename
      ...relayContact_contact @alias
    }
  }
`;
