"""``ghapplets export fission`` end to end without the CLI: a project in, a folder of Fission
specs out, every object valid against Fission's CRDs as written; an exported Python applet
runs through the adapter, and the rewritten manifests send Ghapplets' events to it (the exec
applet's script: test_binary.py)."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ghapplets.applets.loader import discover
from ghapplets.applets.runtime import Invocation, build_runtime
from ghapplets.events.cloudevent import CloudEvent
from ghapplets.fission.export import Environment, Export
from ghapplets.fission.names import is_label
from tests.conftest import ProjectBuilder, write
from tests.fission import crds
from tests.fission.project import NAMESPACE, build, export_project


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
