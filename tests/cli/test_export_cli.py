"""``ghapplets export fission``: the folder it writes, its summary, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli.helpers import cli
from tests.conftest import ProjectBuilder, write
from tests.fission import crds
from tests.fission.project import build


def specs(out: Path) -> list[dict[str, object]]:
    return [
        doc
        for path in sorted((out / "specs").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    ]


def test_export_writes_valid_specs_and_a_summary(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build(project)
    out = tmp_path / "fission"
    result = cli("export", "fission", "--out", out, "--namespace", "apps", "--project", root)
    assert result.code == 0, result
    docs = specs(out)
    assert docs and all(crds.problems(doc) == [] for doc in docs)
    assert all(doc.get("metadata", {}).get("namespace", "apps") == "apps" for doc in docs)  # type: ignore[union-attr]
    assert "fission spec apply --specdir" in result.out
    assert (
        "function triage (applet triage): http://router.fission.svc.cluster.local/ghapplets/triage"
        in result.out
    )
    assert "workflow demo-issue-flow (blueprint demo/issue-flow 1.0.0)" in result.out
    assert "1 blueprint(s) not exported" in result.out
    assert (
        "demo/deploy-flow 1.0.0: /do/1/deploy/call: call: deploy-fn: it runs on the http runtime"
        in result.out
    )
    assert "applet deploy-fn: runs on the http runtime already" in result.out
    assert "create the Kubernetes Secret triage-secrets in apps" in result.out
    manifests = out / "ghapplets" / "applets"
    assert sorted(p.name for p in manifests.iterdir()) == ["deploy-fn", "notify_v2", "triage"]
    # the rewritten manifests are a valid applets folder for the project
    write(
        root / "ghapplets.yaml",
        (root / "ghapplets.yaml").read_text().replace("  - applets", f"  - {manifests}"),
    )
    assert cli("validate", "--project", root).code == 0


def test_router_url_and_exec_environment(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build(project)
    out = tmp_path / "fission"
    result = cli(
        "export", "fission", "--out", out, "--project", root,
        "--router-url", "http://fission-router.example:8080/", "--exec-env", "python",
    )  # fmt: skip
    assert result.code == 0, result
    manifest = yaml.safe_load((out / "ghapplets/applets/triage/applet.yaml").read_text())
    assert manifest["url"] == "http://fission-router.example:8080/ghapplets/triage"
    kinds = [(d["kind"], d.get("metadata", {}).get("name")) for d in specs(out)]  # type: ignore[union-attr]
    assert ("Environment", "ghapplets-binary") not in kinds
    assert all(d.get("metadata", {}).get("namespace", "default") == "default" for d in specs(out))  # type: ignore[union-attr]


def test_an_unknown_out_parent_is_bad_usage(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build(project)
    result = cli("export", "fission", "--out", tmp_path / "nowhere" / "out", "--project", root)
    assert result.code == 2 and "does not exist" in result.err
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_that_is_not_empty_needs_force(project: ProjectBuilder, tmp_path: Path) -> None:
    root = build(project)
    out = tmp_path / "fission"
    write(out / "specs" / "stale.yaml", "kind: Leftover\n")
    write(out / "notes.txt", "mine\n")
    refused = cli("export", "fission", "--out", out, "--project", root)
    assert refused.code == 2 and "not empty" in refused.err and "--force" in refused.err
    forced = cli("export", "fission", "--out", out, "--project", root, "--force")
    assert forced.code == 0, forced
    assert not (out / "specs" / "stale.yaml").exists()  # specs/ is replaced
    assert (out / "notes.txt").read_text() == "mine\n"  # the rest is left alone
    file = tmp_path / "a-file"
    file.write_text("x")
    assert cli("export", "fission", "--out", file, "--project", root, "--force").code == 2


def test_an_invalid_manifest_is_invalid_configuration(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    root = build(project)
    write(root / "applets" / "triage" / "applet.yaml", "name: triage\nruntime: python\ntimout: 3\n")
    result = cli("export", "fission", "--out", tmp_path / "out", "--project", root)
    assert result.code == 3 and "applet.yaml" in result.err and "timout" in result.err
    assert not (tmp_path / "out").exists()


def test_no_project_is_invalid_configuration(tmp_path: Path) -> None:
    result = cli("export", "fission", "--out", tmp_path / "out", "--project", tmp_path)
    assert result.code == 3 and "ghapplets.yaml" in result.err


def test_a_namespace_that_is_no_kubernetes_name_is_bad_usage(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    root = build(project)
    for namespace in ("Apps", "my_apps", "-x", "a" * 64):
        result = cli(
            "export",
            "fission",
            "--out",
            tmp_path / "o",
            "--namespace",
            namespace,
            "--project",
            root,
        )
        assert result.code == 2 and "namespace" in result.err, namespace
    bad_router = cli(
        "export", "fission", "--out", tmp_path / "o", "--router-url", "router:80", "--project", root
    )
    assert bad_router.code == 2 and "--router-url" in bad_router.err


def test_applet_names_become_distinct_kubernetes_names(
    project: ProjectBuilder, tmp_path: Path
) -> None:
    for name in ("hello_py.v2", "hello-py.v2", "x." + "a" * 60):
        project.python_applet(
            name,
            "from ghapplets import Applet\napp = Applet('x')\n\n"
            "@app.on('t')\ndef h(ctx):\n    return 1\n",
        )
    root = project.build()
    out = tmp_path / "out"
    assert cli("export", "fission", "--out", out, "--project", root).code == 0
    functions = [d for d in specs(out) if d["kind"] == "Function"]
    names = [f["metadata"]["name"] for f in functions]  # type: ignore[index]
    assert len(set(names)) == 3 and "hello-py-v2" in names
    assert all(crds.problems(f) == [] for f in functions)
    urls = sorted(
        yaml.safe_load((out / "ghapplets/applets" / n / "applet.yaml").read_text())["url"]
        for n in ("hello_py.v2", "hello-py.v2")
    )
    assert urls[0] != urls[1]


def test_out_inside_an_applet_folder_is_refused(project: ProjectBuilder) -> None:
    root = build(project)
    result = cli(
        "export", "fission", "--out", root / "applets" / "triage" / "out", "--project", root
    )
    assert result.code == 2 and "inside the applet folder" in result.err
