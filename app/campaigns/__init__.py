"""The campaigns domain: repository (all SQL), service, dispatch tasks, lock and progress."""
