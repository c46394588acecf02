"""The bridge's HTTP port: Prometheus metrics, health and readiness, and a read-only status page."""
