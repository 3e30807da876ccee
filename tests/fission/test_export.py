"""``ghapplets export fission`` end to end without the CLI: a project in, a folder of Fission
specs out, every object valid against Fission's CRDs as written; the exported applets run
through the adapter (Python) or the binary environment's script (exec), and the rewritten
manifests send Ghapplets' events to them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from ghapplets.applets.loader import discover
from ghapplets.applets.runtime import Invocation, build_runtime
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import load_blueprints
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.fission.export import Environment, Export, Options, plan
from ghapplets.fission.names import is_label
from ghapplets.fission.writer import write_export
from tests.conftest import ProjectBuilder, write
from tests.fission import crds
from tests.fission.conftest import HANDLER

NAMESPACE = "apps"
EXEC_SCRIPT = """\
#!/bin/sh
# echoes what the exec contract gave it
event=$(cat)
if [ "$(printf '%s' "$event" | grep -c '"busy"')" -gt 0 ]; then exit 75; fi
if [ "$(printf '%s' "$event" | grep -c '"broken"')" -gt 0 ]; then
  echo '{"ok": false, "error": {}}'; exit 0
fi
printf '{"event": %s, "type": "%s", "key": "%s", "attempt": "%s", "delivery": "%s", ' \\
  "$event" "$GHAPPLETS_EVENT_TYPE" "$GHAPPLETS_IDEMPOTENCY_KEY" "$GHAPPLETS_ATTEMPT" \\
  "$GHAPPLETS_DELIVERY_ID"
printf '"applet": "%s", "token": "%s", "channel": "%s", "cwd": "%s"}\\n' \\
  "$GHAPPLETS_APPLET" "$GHAPPLETS_SECRET_SLACK_TOKEN" "$CHANNEL" "$(pwd)"
"""
FLOW = """\
document: {dsl: '1.0.0', namespace: demo, name: issue-flow, version: '1.0.0'}
do:
  - classify: {call: triage}
  - route:
      switch:
        - busy: {when: .title == "urgent", then: tell}
        - calm: {then: end}
  - tell: {call: notify_v2}
"""
REFUSED = """\
document: {dsl: '1.0.0', namespace: demo, name: deploy-flow, version: '1.0.0'}
do:
  - classify: {call: triage}
  - deploy: {call: deploy-fn}
"""


def build(project: ProjectBuilder) -> Path:
    project.python_applet("triage", HANDLER, "secrets: [jira-token]\ntimeout: 5\n")
    project.exec_applet(
        "notify_v2",
        EXEC_SCRIPT,
        "on: [com.github.issues.*]\nsecrets: [slack-token]\nenv: {CHANNEL: deploys}\ntimeout: 7\n",
    )
    write(
        project.root / "applets" / "deploy-fn" / "applet.yaml",
        "name: deploy-fn\nruntime: http\nurl: https://deploy.example.com/\non: [com.github.push]\n",
    )
    project.blueprint("issue-flow", FLOW)
    project.blueprint("deploy-flow", REFUSED)
    return project.build()


def export_project(root: Path, out: Path, **options: Any) -> Export:
    specs = discover([root / "applets"])
    blueprints = load_blueprints([root / "blueprints"], project_catalog(specs))
    export = plan(specs, blueprints, Options(namespace=NAMESPACE, project="test", **options))
    write_export(export, out)
    return export


@pytest.fixture
def exported(project: ProjectBuilder, tmp_path: Path) -> Iterator[tuple[Export, Path]]:
    out = tmp_path / "out"
    yield export_project(build(project), out), out


def documents(out: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((out / "specs").glob("*.yaml")):
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return found


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {
        (d.get("metadata") or {}).get("name", d.get("name")): d for d in docs if d["kind"] == kind
    }


def test_every_written_object_is_valid_against_the_crds_as_written(
    exported: tuple[Export, Path],
) -> None:
    _, out = exported
    docs = documents(out)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["DeploymentConfig", "Environment", "Environment", "Workflow"]
        + ["ArchiveUploadSpec", "Package", "Function", "HTTPTrigger"] * 2
    )
    for doc in docs:
        assert crds.problems(doc) == [], doc


def test_names_and_namespaces_are_kubernetes_ones(exported: tuple[Export, Path]) -> None:
    _, out = exported
    docs = documents(out)
    functions = by_kind(docs, "Function")
    assert set(functions) == {"triage", "notify-v2"}  # notify_v2 is no DNS-1123 label

    def references(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "namespace" in node:
                yield node
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    for doc in docs:
        if doc["kind"] in ("ArchiveUploadSpec", "DeploymentConfig"):
            continue
        for ref in references(doc):
            assert ref["namespace"] == NAMESPACE and is_label(ref["name"]), doc


def test_the_objects_refer_to_each_other_as_fission_spec_validate_checks(
    exported: tuple[Export, Path],
) -> None:
    _, out = exported
    docs = documents(out)
    archives = by_kind(docs, "ArchiveUploadSpec")
    packages = by_kind(docs, "Package")
    functions = by_kind(docs, "Function")
    environments = by_kind(docs, "Environment")
    assert set(environments) == {"ghapplets-python", "ghapplets-binary"}
    for name, package in packages.items():
        spec = package["spec"]
        archive = (spec.get("source") or spec.get("deployment"))["url"]
        assert archive == f"archive://{name}" and name in archives
        assert spec["environment"]["name"] in environments
        for glob in archives[name]["include"]:  # relative to the spec folder's parent
            assert list(out.glob(glob)), glob
    assert packages["triage"]["spec"]["source"]["type"] == "url"  # built: requirements.txt
    assert "deployment" in packages["notify-v2"]["spec"]  # run as it is
    for function in functions.values():
        spec = function["spec"]
        assert spec["package"]["packageref"]["name"] in packages
        assert spec["environment"]["name"] in environments
    assert functions["triage"]["spec"]["package"]["functionName"] == "ghapplets_fission_entry.main"
    assert functions["triage"]["spec"]["functionTimeout"] == 15  # past the applet's 5 s
    assert functions["triage"]["spec"]["secrets"] == [
        {"name": "triage-secrets", "namespace": NAMESPACE}
    ]
    assert functions["notify-v2"]["spec"]["package"]["functionName"] == "ghapplets_fission_entry.sh"
    for name, trigger in by_kind(docs, "HTTPTrigger").items():
        spec = trigger["spec"]  # the CRD's CEL rules, checked by hand
        assert spec["functionref"] == {"type": "name", "name": name} and name in functions
        assert spec["relativeurl"] == f"/ghapplets/{name}" and spec["methods"] == ["POST"]
        assert spec["createingress"] is False  # internal: through the router only
    (workflow,) = by_kind(docs, "Workflow").values()
    for state in workflow["spec"]["states"].values():
        if state["type"] == "Task":
            assert state["function"]["name"] in functions


def test_the_blueprint_that_does_not_map_is_reported(exported: tuple[Export, Path]) -> None:
    export, _ = exported
    (refusal,) = export.refusals
    assert refusal.blueprint == "demo/deploy-flow"
    assert refusal.pointer == "/do/1/deploy/call"
    assert "runs on the http runtime" in refusal.reason
    assert export.workflows == {"demo/issue-flow 1.0.0": "demo-issue-flow"}


def test_the_rewritten_manifests_load_and_point_at_the_router(
    exported: tuple[Export, Path],
) -> None:
    _, out = exported
    specs = {s.name: s for s in discover([out / "ghapplets" / "applets"])}
    assert set(specs) == {"triage", "notify_v2", "deploy-fn"}
    triage = specs["triage"]
    assert triage.runtime == "http"
    assert triage.url == "http://router.fission.svc.cluster.local/ghapplets/triage"
    assert [s.type for s in triage.on] == ["com.github.issues.opened", "ghapplets.blueprint.call"]
    assert triage.timeout == 35 and triage.secrets == []
    assert specs["notify_v2"].url.endswith("/ghapplets/notify-v2")  # type: ignore[union-attr]
    assert specs["deploy-fn"].url == "https://deploy.example.com/"  # kept as it is


def _load_entry(package: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"entry_{abs(hash(package))}", package / "ghapplets_fission_entry.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


async def test_an_exported_python_applet_runs_through_the_adapter(
    exported: tuple[Export, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ghapplets' http runtime, with the rewritten manifest, POSTs to the exported package's
    entry (as Fission's Python environment calls it, Flask's request in context)."""
    _, out = exported
    package = out / "packages" / "triage"
    assert (package / "requirements.txt").read_text() == "ghapplets==0.1.0\n"
    secrets = tmp_path / "secret-volume"
    write(secrets / "jira-token", "t0ken-value")
    monkeypatch.setenv("GHAPPLETS_FISSION_SECRETS_DIR", str(secrets))
    main = _load_entry(package)
    manifest = {s.name: s for s in discover([out / "ghapplets" / "applets"])}["triage"]

    async def router(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == manifest.url

        class FlaskRequest:
            headers = dict(request.headers)

            @staticmethod
            def get_data() -> bytes:
                return request.content

        monkeypatch.setitem(sys.modules, "flask", types.SimpleNamespace(request=FlaskRequest))
        body, status, headers = main()  # Flask calls it in a thread of its own
        return httpx.Response(status, headers=headers, content=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(router))
    async with client, build_runtime(manifest, http=client) as runtime:

        async def invoke(data: dict[str, Any]) -> Any:
            event = CloudEvent(
                id="d-1", source="/github", type="com.github.issues.opened", data=data
            )
            return await runtime.invoke(Invocation(event=event, job_id="job-3", attempt=2))

        ok = await invoke({"title": "crash"})
        assert ok.ok and ok.result["title"] == "crash" and ok.result["key"] == "job-3"
        assert ok.result["secret_length"] == len("t0ken-value")
        busy = await invoke({"busy": True})
        assert not busy.ok and busy.retryable and busy.retry_after == 30
        bad = await invoke({"bad": True})
        assert not bad.ok and not bad.retryable and bad.error_type == "JiraRejected"


def run_binary_env(
    package: Path, headers: dict[str, str], body: bytes, secrets: Path
) -> subprocess.CompletedProcess[bytes]:
    """The file run as Fission's binary environment runs it: /bin/sh, the headers as
    HTTP_<NAME> variables, PATH as it sets it, the body on stdin."""
    env = {"PATH": "$PATH:/userfunc/deployarchive:/userfunc", "REQUEST_METHOD": "POST"}
    env |= {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    env["GHAPPLETS_FISSION_SECRETS_DIR"] = str(secrets)  # the mount, in the test's folder
    return subprocess.run(
        ["/bin/sh", str(package / "ghapplets_fission_entry.sh")],
        input=body,
        env=env,
        capture_output=True,
        timeout=30,
        cwd="/",
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, as in Fission")
def test_an_exported_exec_applet_gets_the_exec_contract_in_the_binary_environment(
    exported: tuple[Export, Path], tmp_path: Path
) -> None:
    _, out = exported
    package = out / "packages" / "notify-v2"
    assert os.access(package / "ghapplets_fission_entry.sh", os.X_OK)
    secrets = tmp_path / "mounted"
    write(secrets / "slack-token", "xoxb-1")
    headers = {
        "Ce-Id": "d-9", "Ce-Source": "/github", "Ce-Type": "com.github.issues.opened",
        "Ce-Specversion": "1.0", "Ce-Githubhost": "github.com", "Content-Type": "application/json",
        "Idempotency-Key": "job-5", "X-Ghapplets-Attempt": "3", "X-Ghapplets-Delivery-Id": "d-9",
    }  # fmt: skip
    done = run_binary_env(package, headers, b'{"title": "a \\"quoted\\" title"}', secrets)
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["event"] == {
        "id": "d-9", "source": "/github", "type": "com.github.issues.opened",
        "specversion": "1.0", "githubhost": "github.com", "datacontenttype": "application/json",
        "data": {"title": 'a "quoted" title'},
    }  # fmt: skip
    assert result["type"] == "com.github.issues.opened" and result["key"] == "job-5"
    assert result["attempt"] == "3" and result["delivery"] == "d-9"
    assert result["applet"] == "notify_v2" and result["token"] == "xoxb-1"
    assert result["channel"] == "deploys" and result["cwd"] == str(package)
    busy = run_binary_env(package, headers, b'{"busy": true}', secrets)
    assert busy.returncode == 75  # the binary environment answers 500: retried
    broken = run_binary_env(package, headers, b'{"broken": true}', secrets)
    assert broken.returncode == 1 and b"reported an error" in broken.stderr
    workflow = {"X-Fission-Workflow-Run": "run-1", "X-Fission-Workflow-Attempt": "2"}
    step = run_binary_env(package, workflow, b'{"title": "t"}', secrets)
    assert step.returncode == 0, step.stderr
    stepped = orjson.loads(step.stdout)
    assert stepped["type"] == "ghapplets.blueprint.call" and stepped["attempt"] == "2"
    assert stepped["event"]["data"] == {"title": "t"} and stepped["delivery"] == "run-1"
    nothing = run_binary_env(package, {}, b"{}", secrets)
    assert nothing.returncode == 1 and b"not a CloudEvent" in nothing.stderr
    no_secret = run_binary_env(package, headers, b"{}", tmp_path / "empty")
    assert no_secret.returncode == 1 and b"slack-token" in no_secret.stderr


def test_exec_applets_can_run_in_the_python_environment(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    export = export_project(build(project), tmp_path / "out", exec_environment=Environment.PYTHON)
    docs = documents(tmp_path / "out")
    assert set(by_kind(docs, "Environment")) == {"ghapplets-python"}
    function = by_kind(docs, "Function")["notify-v2"]
    assert function["spec"]["package"]["functionName"] == "ghapplets_fission_entry.main"
    assert (tmp_path / "out" / "packages" / "notify-v2" / "requirements.txt").exists()
    assert all(crds.problems(doc) == [] for doc in docs)
    assert export.functions == {"notify_v2": "notify-v2", "triage": "triage"}


def test_the_applets_own_requirements_are_kept(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build(project)
    write(root / "applets" / "triage" / "requirements.txt", "requests>=2\n")
    write(root / "applets" / "triage" / ".env", "SECRET=1\n")  # hidden: not packaged
    export_project(root, tmp_path / "out")
    package = tmp_path / "out" / "packages" / "triage"
    assert (package / "requirements.txt").read_text() == "requests>=2\nghapplets==0.1.0\n"
    assert not (package / ".env").exists()
