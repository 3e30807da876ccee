"""The HTTP gateway: ``POST /hooks/{source}`` ingest, health, readiness and metrics."""
