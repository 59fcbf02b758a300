"""Liveness and readiness (the use case behind /api/health and /api/health/ready)."""
