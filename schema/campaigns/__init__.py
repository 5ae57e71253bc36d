"""GraphQL API of the campaigns domain."""
