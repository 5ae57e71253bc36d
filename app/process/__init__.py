"""A process's life: process-wide resources, preflight checks, embedded services and
`herald dev`."""
