"""The example of docs/fakes.md runs as written, on the plugin's ``ghapplets_fakes`` fixture."""

import httpx


def test_my_connector_comments(ghapplets_fakes):
    gh = ghapplets_fakes.github
    jwt = ghapplets_fakes.app_jwt()
    token = httpx.post(
        f"{gh.base_url}/app/installations/2001/access_tokens",
        headers={"Authorization": f"Bearer {jwt}"},
    ).json()["token"]
    httpx.post(
        f"{gh.base_url}/repos/octo-org/hello-world/issues/1/comments",
        headers={"Authorization": f"token {token}"},
        json={"body": "hi"},
    )
    assert gh.repo("octo-org/hello-world").comments[0]["body"] == "hi"
    assert gh.exchanges(2001) == 1


def test_each_test_starts_from_the_configuration(ghapplets_fakes):
    """Run after the one above in any order: nothing it did is left."""
    assert ghapplets_fakes.github.exchanges(2001) == 0
    assert ghapplets_fakes.github.repo("octo-org/hello-world").comments == []
    assert ghapplets_fakes.github.requests() == []
