"""The Dramatiq broker, the enqueueing API, the actors and the worker process's set-up."""
