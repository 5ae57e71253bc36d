"""The sender numbers and messaging limit in GraphQL."""
