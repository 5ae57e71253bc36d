"""GraphQL API of the contacts domain."""
