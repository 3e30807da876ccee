"""Reading a form a browser POSTs: bounded in size and fields, URL-encoded only, and its CSRF
token checked before anything else happens.

Two kinds of CSRF token: a signed-in session's own (every form of the pages carries it), and
for the login form a double-submit cookie (:data:`LOGIN_COOKIE`, HttpOnly, SameSite=Strict): a
random value the form repeats, which another site can neither read nor set.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl

from starlette.requests import Request

from ghapplets.admin.app import read_body
from ghapplets.admin.problems import ApiProblem

MAX_FORM = 16 * 1024  # bytes of a form body
MAX_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
LOGIN_COOKIE = "ghapplets_login"
CSRF_FIELD = "csrf"


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


async def read_form(request: Request, timeout: float = 30.0) -> dict[str, str]:
    """The form's fields (the first of a repeated name); ApiProblem 413 when too large, 415
    when not URL-encoded, 400 when malformed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, MAX_FORM, timeout)
    if raw and ctype != FORM_TYPE:
        raise ApiProblem(415, "media-type", f"a form must be {FORM_TYPE}")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise ApiProblem(400, "bad-form", "the form could not be read") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields
