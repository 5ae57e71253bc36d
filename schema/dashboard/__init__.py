"""GraphQL API of the dashboard: headline figures in one object."""
