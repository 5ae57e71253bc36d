"""Relay's object identification: any object by its global id (`node`, `nodes`)."""
