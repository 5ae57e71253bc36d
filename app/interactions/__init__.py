"""The interactions domain: replies and events recorded against sent messages."""
