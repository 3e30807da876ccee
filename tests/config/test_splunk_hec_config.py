"""``logging.splunk_hec``: defaults, the checks on each setting, errors located in the file."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import certifi
import pytest

from ghapplets.config.loader import load_config
from ghapplets.config.models import SplunkHecConfig
from ghapplets.exceptions import ConfigError


def config_file(tmp_path: Path, hec: str) -> Path:
    path = tmp_path / "ghapplets.yaml"
    body = textwrap.indent(textwrap.dedent(hec).strip(), "    ")
    path.write_text(f"project: demo\nlogging:\n  level: info\n  splunk_hec:\n{body}\n")
    return path


def problems(tmp_path: Path, hec: str, environ: dict[str, str] | None = None) -> list[str]:
    path = config_file(tmp_path, hec)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ=environ or {})
    return [str(p).removeprefix(f"{path}:") for p in exc.value.problems]


def test_the_defaults(tmp_path: Path) -> None:
    config_file(tmp_path, "url: https://splunk.example.com:8088/\ntoken: ${env:HEC_TOKEN}")
    hec = load_config(tmp_path, environ={}).config.logging.splunk_hec
    assert hec is not None
    assert hec.url == "https://splunk.example.com:8088"  # the trailing slash goes
    assert hec.endpoint == "https://splunk.example.com:8088/services/collector/event"
    assert hec.token == "${env:HEC_TOKEN}"  # resolved when a process starts
    assert (hec.index, hec.source, hec.sourcetype) == (None, None, "ghapplets")
    assert (hec.batch_size, hec.flush_interval, hec.queue_size) == (100, 1.0, 10_000)
    assert (hec.timeout, hec.verify) == (10.0, True)


def test_off_unless_configured(tmp_path: Path) -> None:
    (tmp_path / "ghapplets.yaml").write_text("project: demo\n")
    assert load_config(tmp_path, environ={}).config.logging.splunk_hec is None


def test_a_proxy_path_prefix_is_kept(tmp_path: Path) -> None:
    hec = SplunkHecConfig(url=" http://proxy.internal/splunk ", token="t")
    assert hec.endpoint == "http://proxy.internal/splunk/services/collector/event"


@pytest.mark.parametrize(
    ("hec", "expected"),
    [
        ("token: t", "4:3: logging.splunk_hec.url: Field required"),
        ("url: https://h:8088", "4:3: logging.splunk_hec.token: Field required"),
        ("url: https://h:8088\ntoken: ''", "6:5: logging.splunk_hec.token: String should have"),
        ("url: splunk:8088\ntoken: t", "5:5: logging.splunk_hec.url: Value error, 'splunk:8088' "),
        ("url: ftp://h\ntoken: t", "logging.splunk_hec.url: Value error, 'ftp://h' is not an"),
        (
            "url: https://h:99999\ntoken: t",
            "logging.splunk_hec.url: Value error, 'https://h:99999'",
        ),
        ("url: https://u:p@h\ntoken: t", "logging.splunk_hec.url: Value error, url takes no cred"),
        ("url: https://h/?x=1\ntoken: t", "logging.splunk_hec.url: Value error, url takes no cred"),
        (
            "url: https://h:8088/services/collector/event\ntoken: t",
            "logging.splunk_hec.url: Value error, url is the HEC's base URL",
        ),
        ("url: https://h\ntoken: t\ntokn: x", "7:5: logging.splunk_hec.tokn: Extra inputs"),
        ("url: https://h\ntoken: t\nbatch_size: 0", "logging.splunk_hec.batch_size: Input should"),
        ("url: https://h\ntoken: t\nqueue_size: 0", "logging.splunk_hec.queue_size: Input should"),
        ("url: https://h\ntoken: t\nflush_interval: 0", "logging.splunk_hec.flush_interval:"),
        ("url: https://h\ntoken: t\ntimeout: 0", "logging.splunk_hec.timeout: Input should be"),
        ("url: https://h\ntoken: t\nindex: ''", "logging.splunk_hec.index: String should have"),
    ],
)
def test_bad_settings_are_located_errors(tmp_path: Path, hec: str, expected: str) -> None:
    found = problems(tmp_path, hec)
    assert any(expected in p for p in found), found


def test_the_message_of_a_bad_url_says_what_is_expected(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "url: splunk.example.com:8088\ntoken: t")
    assert "is not an http(s)://host[:port] URL (e.g. https://splunk.example.com:8088)" in found
    (found,) = problems(tmp_path, "url: https://h:8088/services/collector\ntoken: t")
    assert "without /services/collector: the log lines go to <url>/services/collector/event" in (
        found
    )


def test_verify_is_false_or_a_ca_bundle_in_the_project(tmp_path: Path) -> None:
    config_file(tmp_path, "url: https://h\ntoken: t\nverify: false")
    hec = load_config(tmp_path, environ={}).config.logging.splunk_hec
    assert hec is not None and hec.verify is False
    shutil.copy(certifi.where(), tmp_path / "corp-ca.pem")
    config_file(tmp_path, "url: https://h\ntoken: t\nverify: corp-ca.pem")
    hec = load_config(tmp_path, environ={}).config.logging.splunk_hec
    assert hec is not None and hec.verify == "corp-ca.pem"


def test_a_ca_bundle_that_cannot_be_used_is_a_located_error(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "url: https://h\ntoken: t\nverify: missing.pem")
    assert found.startswith("7:5: logging.splunk_hec.verify: cannot use "), found
    assert "missing.pem" in found and "No such file or directory" in found
    (tmp_path / "not-a-ca.pem").write_text("hello\n")
    (found,) = problems(tmp_path, "url: https://h\ntoken: t\nverify: not-a-ca.pem")
    assert "not-a-ca.pem" in found and "no certificate" in found.lower()


def test_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "ghapplets.yaml").write_text("project: demo\n")
    environ = {
        "GHAPPLETS_LOGGING__SPLUNK_HEC__URL": "https://hec.internal:8088",
        "GHAPPLETS_LOGGING__SPLUNK_HEC__TOKEN": "${secret:hec-token}",
        "GHAPPLETS_LOGGING__SPLUNK_HEC__VERIFY": "false",
        "GHAPPLETS_LOGGING__SPLUNK_HEC__BATCH_SIZE": "500",
    }
    hec = load_config(tmp_path, environ=environ).config.logging.splunk_hec
    assert hec is not None
    assert (hec.url, hec.token, hec.verify, hec.batch_size) == (
        "https://hec.internal:8088",
        "${secret:hec-token}",
        False,
        500,
    )
    del environ["GHAPPLETS_LOGGING__SPLUNK_HEC__TOKEN"]
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, environ=environ)
    (found,) = (str(p) for p in exc.value.problems)
    assert "ghapplets.yaml:1:1: logging.splunk_hec.token: Field required" in found
