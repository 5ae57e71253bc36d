"""The messages domain: repository (all SQL), the columns a page selects, send tasks."""
