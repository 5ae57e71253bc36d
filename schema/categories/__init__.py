"""GraphQL API of the categories domain."""
