"""The static files: the vendored ones are those published (their SHA-256 sums), and no
template has inline script, style or event handlers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "src" / "ghapplets" / "dashboard" / "static"


def test_the_vendored_files_are_the_ones_published() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    rows = re.findall(r"^\| `(vendor/[^`]+)` \|.*?\| `([0-9a-f]{64})` \|", table, re.MULTILINE)
    assert len(rows) == 2
    for name, digest in rows:
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    templates = (STATIC.parent / "templates" / "base.html").read_text()
    for name, _ in rows:
        assert f"/static/{name}" in templates  # the page loads the file the table vouches for


def test_no_template_or_asset_has_inline_code() -> None:
    for template in (STATIC.parent / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\sstyle\s*=", text), template.name
