"""deploy/compose: valid against the Compose Specification, and a sound one-host production
setup (NATS with JetStream, PostgreSQL, two gateways behind HAProxy, two workers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.haproxy import haproxy_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
DRAIN_TIMEOUT = 30  # server.drain_timeout's default


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((COMPOSE / "compose.yaml").read_text())  # merge keys resolved
    assert isinstance(loaded, dict)
    return loaded


def test_compose_is_valid_against_the_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert not errors, errors


def test_the_schema_refuses_what_is_wrong(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_the_services_of_the_distributed_mode(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"gateway", "worker", "nats", "postgres", "haproxy"} <= set(services)
    for role in ("gateway", "worker"):
        service = services[role]
        assert service["deploy"]["replicas"] >= 2, role
        assert service["command"][0] == role
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], role
        assert not str(service["user"]).startswith("0"), role
        assert "no-new-privileges:true" in service["security_opt"], role
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > DRAIN_TIMEOUT, role  # SIGTERM drains within the grace period
        env = service["environment"]
        assert env["GHAPPLETS_BROKER__URL"] == "nats://nats:4222"
        assert env["GHAPPLETS_STORAGE__URL"].startswith("postgresql://ghapplets:")
        assert env["GHAPPLETS_STORAGE__URL"].endswith("@postgres:5432/ghapplets")
        assert set(service["depends_on"]) == {"nats", "postgres"}
    assert "--jetstream" in services["nats"]["command"]


def test_every_service_has_a_health_check_and_state_is_in_named_volumes(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    named = set(compose["volumes"])
    for name in ("nats", "postgres"):
        mounts = compose["services"][name]["volumes"]
        assert [m for m in mounts if m.split(":")[0] in named], name


def test_the_health_checks_probe_the_readiness_endpoints(compose: dict[str, Any]) -> None:
    gateway = " ".join(compose["services"]["gateway"]["healthcheck"]["test"])
    worker = " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    assert "127.0.0.1:8080/readyz" in gateway
    worker_port = compose["services"]["worker"]["command"][-1]
    assert f"127.0.0.1:{worker_port}/readyz" in worker


def test_every_required_variable_is_in_the_example_env_file() -> None:
    text = (COMPOSE / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {line.split("=")[0] for line in (COMPOSE / ".env.example").read_text().splitlines()}
    assert required and required <= example, required - example


def test_haproxy_configuration_is_valid_and_checks_readiness() -> None:
    cfg = COMPOSE / "haproxy.cfg"
    done = subprocess.run([haproxy_binary(), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    text = cfg.read_text()
    assert "option httpchk GET /readyz" in text
    assert re.search(r"server-template \w+ 2 gateway:8080", text)


def test_the_project_of_the_compose_deployment_is_valid(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GITHUB_WEBHOOK_SECRET": "x" * 32,
        "GHAPPLETS_STORAGE__URL": "postgresql://ghapplets:pw@postgres:5432/ghapplets",
        "GHAPPLETS_BROKER__URL": "nats://nats:4222",
    }
    ghapplets = Path(sys.executable).with_name("ghapplets")
    done = subprocess.run(
        [str(ghapplets), "validate", "--project", str(COMPOSE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
