"""The ``ghapplets`` command line (Typer + Rich)."""
