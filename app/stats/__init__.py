"""Statistics counters: per campaign and status, interactions, contacts; their upkeep task."""
