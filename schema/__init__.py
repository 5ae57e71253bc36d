"""Strawberry GraphQL schema: types, queries and mutations per domain."""
