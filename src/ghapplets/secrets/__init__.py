"""Secrets: encryption at rest, the embedded vault, and references to secret values."""
