"""Dispatching events to applets and running jobs: fan-out, retries, dead letters, replay."""
