"""API keys: bearer credentials with a role, stored as SHA-256 hashes."""
