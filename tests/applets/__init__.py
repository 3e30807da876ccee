"""Tests of applet discovery, matching and the runtimes."""
