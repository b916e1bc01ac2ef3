"""The daemon's Prometheus metrics and health endpoints (`metrics_listen`)."""
