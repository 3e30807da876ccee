"""Ghapplets applets as Fission functions: the entry point Fission's Python environment calls.

This package owns running an applet inside Fission. ``ghapplets export fission`` writes, into
the package of each exported applet, an entry module that Fission's Python environment loads
(``functionName: ghapplets_fission_entry.main``)::

    from ghapplets.fission import entry

    main = entry(__file__, secrets="/secrets/<namespace>/<secret>")

The environment imports it once and calls ``main()`` for every request, with Flask's
``request`` in context; ``main`` answers a ``(body, status, headers)`` tuple. Flask is imported
only there, when a request comes: everything else (:mod:`.adapter`) works on plain headers and
bytes. ``GHAPPLETS_FISSION_SECRETS_DIR`` overrides where the applet's secrets are read from.

The other modules write the export: :mod:`.export` (a project to Fission objects),
:mod:`.workflows` (a blueprint to a Fission ``Workflow``, or why not), :mod:`.conditions`
(jq conditions and paths to a Choice's rules and JSONPath), :mod:`.binary` (the wrapper that
runs an exec applet in Fission's binary environment), :mod:`.names` (Kubernetes names) and
:mod:`.writer` (the files).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ghapplets.fission.adapter import FissionApplet

ENTRY_MODULE = "ghapplets_fission_entry"
ENTRY_FUNCTION = "main"

__all__ = ["ENTRY_FUNCTION", "ENTRY_MODULE", "applet_for", "entry"]


def applet_for(module_file: str | Path, *, secrets: str | None = None) -> FissionApplet:
    """The applet whose package holds ``module_file``; its secrets are read from
    ``GHAPPLETS_FISSION_SECRETS_DIR`` if set, else from ``secrets``."""
    from ghapplets.fission.adapter import SECRETS_ENV, FissionApplet

    folder = Path(module_file).resolve().parent
    where = os.environ.get(SECRETS_ENV) or secrets
    return FissionApplet(folder, secrets_dir=Path(where) if where else None)


def entry(module_file: str | Path, *, secrets: str | None = None) -> Callable[[], Any]:
    """The ``main`` Fission's Python environment calls for the applet whose package holds
    ``module_file``: it reads Flask's ``request`` and answers ``(body, status, headers)``."""
    from ghapplets.fission.adapter import FissionRequest

    applet = applet_for(module_file, secrets=secrets)

    def main() -> tuple[bytes, int, dict[str, str]]:
        # Fission's Python environment has Flask; Ghapplets does not depend on it
        from flask import request  # type: ignore[import-not-found]

        reply = applet(FissionRequest(dict(request.headers), request.get_data()))
        return reply.body, reply.status, reply.headers

    return main
