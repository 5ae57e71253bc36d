"""The messages domain: repository (all SQL) and service."""
