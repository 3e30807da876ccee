"""``server.dashboard``: defaults, the environment, and bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ghapplets.config.loader import load_config
from ghapplets.config.models import DashboardConfig, SecureCookie


def test_dashboard_settings_and_their_bounds(tmp_path: Path) -> None:
    defaults = DashboardConfig()
    assert (defaults.enabled, defaults.session_hours, defaults.secure_cookie) == (
        True,
        8.0,
        SecureCookie.AUTO,
    )
    assert (defaults.live_connections, defaults.live_seconds) == (50, 300.0)
    env = {
        "GHAPPLETS_SERVER__DASHBOARD__ENABLED": "false",
        "GHAPPLETS_SERVER__DASHBOARD__SECURE_COOKIE": "always",
        "GHAPPLETS_SERVER__DASHBOARD__LIVE_CONNECTIONS": "3",
    }
    yaml = "project: demo\nserver:\n  dashboard:\n    session_hours: 2\n"
    (tmp_path / "ghapplets.yaml").write_text(yaml)
    loaded = load_config(tmp_path, environ=env).config.server.dashboard
    assert loaded.session_hours == 2
    assert not loaded.enabled and loaded.secure_cookie == SecureCookie.ALWAYS
    assert loaded.live_connections == 3
    for bad in ({"session_hours": 0}, {"secure_cookie": "sometimes"}, {"live_seconds": 1}):
        with pytest.raises(ValidationError):
            DashboardConfig.model_validate(bad)
    with pytest.raises(ValidationError):
        DashboardConfig.model_validate({"colour": "blue"})
