"""Secrets: encryption at rest, the embedded secret vault, and ``${env:...}``/``${secret:...}`` references."""
