"""GraphQL API of the templates domain."""
