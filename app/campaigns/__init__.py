"""The campaigns domain: repository (all SQL) and service."""
