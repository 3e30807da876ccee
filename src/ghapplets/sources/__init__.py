"""Webhook sources: per-vendor verification presets and normalisation to CloudEvents (sans-I/O)."""
