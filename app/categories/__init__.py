"""The categories domain: repository (all SQL) and service."""
