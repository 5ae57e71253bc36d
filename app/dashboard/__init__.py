"""The dashboard domain: one consolidated read of the headline figures."""
