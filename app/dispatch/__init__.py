"""Empty but for broker.py, which app/cache.py still imports the broker's namespace from."""
