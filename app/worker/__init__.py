"""The Dramatiq broker, the enqueueing API and the worker process (its actors: app/actors.py)."""
