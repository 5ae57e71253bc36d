"""What operators see: request ids and structured logs, Prometheus metrics, phone masking in
logs."""
