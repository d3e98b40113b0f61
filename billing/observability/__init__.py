"""Health and readiness probes and Prometheus metrics for operators."""
