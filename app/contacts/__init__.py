"""The contacts domain: repository (all SQL), service and availability-check tasks."""
