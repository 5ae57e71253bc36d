"""GraphQL API of the messages domain."""
