"""The contacts domain: repository (all SQL) and service."""
