"""Loading ``ghapplets.yaml``: ``GHAPPLETS_*`` overrides, located errors, per-kind sources."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ghapplets.config.loader import apply_env_overrides, load_config
from ghapplets.config.located import parse_yaml
from ghapplets.config.models import ServerConfig, WorkerConfig
from ghapplets.exceptions import ConfigError
from ghapplets.sources.github import GitHubSource


def config_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "applets").mkdir(exist_ok=True)
    path = tmp_path / "ghapplets.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
project: demo
sources:
  github:
    kind: github
    secret: ${env:GITHUB_WEBHOOK_SECRET}
applets: [applets]
server:
  host: 127.0.0.1
  port: 8080
"""


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_a_good_config_loads(tmp_path: Path) -> None:
    path = config_file(tmp_path, BASE)
    loaded = load_config(tmp_path, environ={})
    assert loaded.path == path
    assert loaded.config.project == "demo"
    assert loaded.config.server.port == 8080
    assert loaded.config.applet_dirs() == [(tmp_path / "applets").resolve()]
    assert loaded.sources["github"].kind == "github"
    assert isinstance(loaded.sources["github"], GitHubSource.settings_model)
    # the reference is kept as written; it is resolved when the server starts
    assert loaded.sources["github"].secret == "${env:GITHUB_WEBHOOK_SECRET}"
    assert load_config(path, environ={}).config == loaded.config  # the file itself works too


def test_server_port_override(tmp_path: Path) -> None:
    config_file(tmp_path, BASE)
    loaded = load_config(tmp_path, environ={"GHAPPLETS_SERVER__PORT": "9999"})
    assert loaded.config.server.port == 9999
    assert loaded.config.server.host == "127.0.0.1"  # siblings are kept


def test_overrides_come_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file(tmp_path, BASE)
    monkeypatch.setenv("GHAPPLETS_SERVER__PORT", "9999")
    monkeypatch.setenv("GHAPPLETS_LOGGING__LEVEL", "debug")  # a section the file does not have
    monkeypatch.setenv("GHAPPLETS_SERVER__TRUSTED_PROXIES", "[10.0.0.0/8, '2001:db8::/32']")
    loaded = load_config(tmp_path)
    assert loaded.config.server.port == 9999
    assert loaded.config.server.trusted_proxies == ["10.0.0.0/8", "2001:db8::/32"]
    assert loaded.config.logging.level == "debug"


def test_a_source_setting_override(tmp_path: Path) -> None:
    config_file(tmp_path, BASE)
    env = {"GHAPPLETS_SOURCES__GITHUB__SECRET": "${secret:gh}", "GHAPPLETS_PROJECT": "other"}
    loaded = load_config(tmp_path, environ=env)
    assert loaded.sources["github"].secret == "${secret:gh}"
    assert loaded.config.project == "other"


def test_a_bad_override_names_its_variable(tmp_path: Path) -> None:
    config_file(tmp_path, BASE)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={"GHAPPLETS_SERVER__PORT": "soon"})
    (problem,) = problems(exc)
    assert "server.port: Input should be a valid integer" in problem
    assert problem.endswith("(from GHAPPLETS_SERVER__PORT)")


def test_a_misspelt_override_is_an_error_naming_it(tmp_path: Path) -> None:
    config_file(tmp_path, BASE)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={"GHAPPLETS_SERVR__PORT": "1"})
    (problem,) = problems(exc)
    assert "servr:" in problem and "(from GHAPPLETS_SERVR__PORT)" in problem


@pytest.mark.parametrize(
    "name",
    [
        "GHAPPLETS_SECRET_KEY",
        "GHAPPLETS_CONFIG",
        "GHAPPLETS_DATA_DIR",
        "GHAPPLETS_SEND_SECRET",  # `ghapplets send --secret`
        "GHAPPLETS_JOB_ID",  # what an exec applet sees
        "GHAPPLETS_SECRET_API_TOKEN",
        "GHAPPLETS_ROOT",  # not a key of the file
    ],
)
def test_variables_that_are_not_overrides(tmp_path: Path, name: str) -> None:
    config_file(tmp_path, BASE)
    loaded = load_config(tmp_path, environ={name: "whatever"})
    assert loaded.config.root == tmp_path.resolve()


def test_apply_env_overrides_reads_yaml_scalars() -> None:
    data: dict[str, object] = {"server": {"port": 1}}
    applied: dict[str, str] = {}
    env = {"GHAPPLETS_SERVER__PORT": "2", "GHAPPLETS_WORKER__POLL_INTERVAL": "0.25", "HOME": "/"}
    apply_env_overrides(data, env, applied)
    assert data == {"server": {"port": 2}, "worker": {"poll_interval": 0.25}}
    assert applied == {"server.port": "GHAPPLETS_SERVER__PORT",
                       "worker.poll_interval": "GHAPPLETS_WORKER__POLL_INTERVAL"}  # fmt: skip


def test_duplicate_keys_are_located(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        """\
        project: demo
        applets: [applets]
        server:
          port: 1
          host: 127.0.0.1
          port: 2
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    assert problems(exc) == [f"{path}:6:3: server: duplicate key 'port'"]


def test_duplicate_top_level_keys_and_source_names(tmp_path: Path) -> None:
    path = config_file(tmp_path, "sources:\n  a:\n    kind: generic\n  a:\n    kind: github\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    assert problems(exc) == [f"{path}:4:3: sources: duplicate key 'a'"]
    with pytest.raises(ConfigError) as exc:
        parse_yaml("project: a\n\nproject: b\n", "x.yaml")
    assert problems(exc) == ["x.yaml:3:1: duplicate key 'project'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", ":1:1: expected a mapping at the top level"),
        ("project: Not Valid\n", ":1:1: project: String should match pattern"),
        ("storage:\n  backend: postgres\n", ":2:3: storage.backend: Input should be 'sqlite'"),
        ("sources:\n  gh:\n    secret: x\n", ":2:3: sources.gh.kind: Field required"),
        ("sources:\n  gh: {kind: jira, secrett: x}\n", ":2:20: sources.gh.secrett: Extra inputs"),
        ("applets: [applets, nope]\n", ":1:20: applets.1: folder 'nope' does not exist"),
        ("server:\n  port: 70000\n", ":2:3: server.port: Input should be less than or equal"),
        # an enum's members are named as written, not by their Python repr
        (
            "connectors:\n  gh: {kind: githubb}\n",
            ":2:3: connectors.gh: Input tag 'githubb' found using 'kind' does not match any of the"
            " expected tags: 'github', 'jira', 'servicenow', 'splunk'",
        ),
    ],
)
def test_located_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = config_file(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    assert problems(exc)[0].startswith(f"{path}{expected}"), problems(exc)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config_file(
        tmp_path,
        "sources:\n  a: {kind: nope}\n  b: {kind: github, x: 1}\napplets: [missing]\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    found = problems(exc)
    assert len(found) == 3, found
    assert [p.split(": ")[1] for p in found] == ["sources.a.kind", "sources.b.x", "applets.0"]


def test_a_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    assert problems(exc) == [f"{tmp_path / 'ghapplets.yaml'}:1:1: file not found"]
    config_file(tmp_path, "")
    loaded = load_config(tmp_path, environ={})
    assert loaded.config.project == "ghapplets" and loaded.sources == {}


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "ghapplets.yaml").write_bytes(b"project: \xff\xfe\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ={})
    assert "not UTF-8" in problems(exc)[0]


def test_trusted_proxies_are_networks(tmp_path: Path) -> None:
    config_file(tmp_path, BASE + "  trusted_proxies: [10.0.0.0/8, '::1', 192.168.1.7/32]\n")
    assert load_config(tmp_path, environ={}).config.server.trusted_proxies == [
        "10.0.0.0/8",
        "::1",
        "192.168.1.7/32",
    ]
    config_file(tmp_path, BASE + "  trusted_proxies: [10.0.0.0/8, 10.0.0.300/32]\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert "'10.0.0.300/32' is not an IP address or CIDR network" in str(info.value)
    assert ":10:" in problems(info)[0]  # located at the key
    loaded = load_config(
        tmp_path.parent / tmp_path.name,
        environ={"GHAPPLETS_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12"},
    )
    assert loaded.config.server.trusted_proxies == ["10.0.0.0/8", "172.16.0.0/12"]


def test_the_removed_trust_forwarded_for_names_its_replacement(tmp_path: Path) -> None:
    config_file(tmp_path, BASE + "  trust_forwarded_for: true\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    (problem,) = problems(info)
    assert ":10:3: server.trust_forwarded_for:" in problem
    assert "trusted_proxies" in problem
    config_file(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={"GHAPPLETS_SERVER__TRUST_FORWARDED_FOR": "false"})
    assert "trusted_proxies" in str(info.value)
    assert "GHAPPLETS_SERVER__TRUST_FORWARDED_FOR" in str(info.value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("'9090'", "is not host:port"),
        ("'localhost:'", "is not host:port"),
        ("'127.0.0.1:70000'", "is not host:port"),
        ("'127.0.0.1:8080'", "uses the webhook port 8080"),
    ],
)
def test_metrics_address_is_checked(tmp_path: Path, value: str, error: str) -> None:
    config_file(tmp_path, BASE + f"  metrics_address: {value}\n")
    with pytest.raises(ConfigError, match=error):
        load_config(tmp_path, environ={})


def test_metrics_address_and_http_limits(tmp_path: Path) -> None:
    config_file(
        tmp_path,
        BASE
        + "  metrics_address: '[::1]:9090'\n  header_timeout: 2.5\n  max_headers: 50\n"
        + "  max_header_bytes: 8192\n  keep_alive_timeout: 3\n  max_connections: 10\n",
    )
    server = load_config(tmp_path, environ={}).config.server
    assert server.metrics_listener == ("::1", 9090)
    assert (server.header_timeout, server.max_headers, server.max_header_bytes) == (2.5, 50, 8192)
    assert (server.keep_alive_timeout, server.max_connections) == (3.0, 10)
    defaults = ServerConfig()
    assert defaults.metrics_listener is None and defaults.trusted_proxies == []
    assert (defaults.header_timeout, defaults.max_headers, defaults.max_header_bytes) == (
        10.0,
        100,
        65536,
    )
    assert (defaults.keep_alive_timeout, defaults.max_connections) == (5.0, 1024)


def test_the_action_endpoint_settings() -> None:
    assert WorkerConfig().actions_listener == ("127.0.0.1", 0)
    assert WorkerConfig(actions_address="[::]:8099").actions_listener == ("::", 8099)
    for bad in ("8099", "host:port", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="is not host:port"):
            WorkerConfig(actions_address=bad)
    with pytest.raises(ValueError, match="should match pattern"):
        WorkerConfig(actions_url="ftp://worker/v1/actions")
