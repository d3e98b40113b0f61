"""What an operator watches: health and readiness probes and Prometheus metrics."""
