"""Applets: the shared model, manifest loading, subscription matching and the runtimes."""
