"""Benchmarks: seed data at scale, drive the real server, print tables."""
