"""Tests of the public Python SDK."""
