"""``ghapplets action`` with a ServiceNow OAuth connector: each run is a process of its own, and
the runs share one access token through the project's store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ghapplets.fakes.config import OAuthClient, ServiceNowUser
from tests.cli.helpers import cli
from tests.conftest import ProjectBuilder

USER, CLIENT = ServiceNowUser(), OAuthClient()
QUERY = json.dumps({"table": "incident", "query": ""})


def test_runs_share_the_access_token(tmp_path: Path, ghapplets_fakes: Any) -> None:
    builder = ProjectBuilder(tmp_path / "p")
    builder.extra = (
        "connectors:\n  servicenow:\n    kind: servicenow\n"
        f"    base_url: {ghapplets_fakes.servicenow.base_url}\n    grant: password\n"
        f"    username: {USER.username}\n    password: ${{env:SN_PASSWORD}}\n"
        f"    client_id: {CLIENT.client_id}\n    client_secret: ${{secret:sn-client-secret}}\n"
    )
    root = builder.build()
    stored = cli("secrets", "set", "sn-client-secret", "-p", root, input=CLIENT.client_secret)
    assert stored.code == 0, stored
    env = {"SN_PASSWORD": USER.password}
    for _ in range(3):
        result = cli("action", "servicenow.query", "-i", QUERY, "-p", root, env=env)
        assert result.code == 0, result
        assert json.loads(result.out) == []
    tokens = ghapplets_fakes.servicenow.requests(path="/oauth_token.do")
    assert len(tokens) == 1
    assert USER.password not in result.out + result.err
