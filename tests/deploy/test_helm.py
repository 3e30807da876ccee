"""The Helm chart deploy/helm/ghapplets: ``helm lint --strict``, the rendered manifests against
Kubernetes' own JSON schemas (strict: an unknown field is an error), and each rule of the chart
checked on the rendered objects.

helm comes from PATH or is fetched once (tests/deploy/tools.py); when neither works the tests
fail with what to do, they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import kubernetes_validate
import pytest
import typer
import yaml
from pydantic import BaseModel

from ghapplets.applets.model import NAME_PATTERN
from ghapplets.backup.archive import Archive
from ghapplets.broker.nats import NatsBroker
from ghapplets.cli.main import app
from ghapplets.config.models import BrokerConfig, LoggingConfig, ProjectConfig, StorageConfig
from ghapplets.secrets.config import VAULT_ALIAS, BackendKind
from ghapplets.secrets.crypto import generate_key
from tests.conftest import WEBHOOK_SECRET, free_port
from tests.deploy.tools import ToolUnavailable, helm
from tests.faults import signed
from tests.servers import NatsServer

pytestmark = pytest.mark.slow  # 15-30 s: some sixty helm runs, and the roles run for real

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ghapplets"
VALUES = CHART / "values.yaml"
HA = CHART / "values-ha.yaml"
OPENSHIFT = CHART / "values-openshift.yaml"
KUBE_VERSION = "1.33.0"
RELEASE = "rel"
NAMESPACE = "hooks"

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
ROLES = {"serve", "gateway", "worker"}
CRDS = {"Route", "ServiceMonitor", "ScaledObject"}  # kinds kubernetes-validate has no schema of
# each optional object: the value that turns it on, its kind; all default to off
OPTIONAL = {
    "ingress": ("ingress.enabled=true", "Ingress"),
    "route": ("route.enabled=true", "Route"),
    "networkPolicy": ("networkPolicy.enabled=true", "NetworkPolicy"),
    "serviceMonitor": ("serviceMonitor.enabled=true", "ServiceMonitor"),
    "keda": ("keda.enabled=true", "ScaledObject"),  # workers: distributed mode only
    "backup": ("backup.enabled=true", "CronJob"),
}
EMBEDDED_FEATURES = [name for name in OPTIONAL if name != "keda"]
# every setting enabled at once, for the schema checks
EVERYTHING = (
    "secrets.create=true",
    "secrets.values.GITHUB_WEBHOOK_SECRET=dev-secret",
    "applets.configMaps[0].name=triage",
    "applets.configMaps[0].configMap=triage-applet",
    "applets.volume.persistentVolumeClaim.claimName=ghapplets-applets",
    "applets.volume.persistentVolumeClaim.readOnly=true",
    "ingress.tls[0].secretName=ghapplets-tls",
    "ingress.tls[0].hosts[0]=ghapplets.example.com",
    "ingress.className=nginx",
    "serviceMonitor.labels.release=kube-prometheus-stack",
    "networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.name=ingress",
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
)


# -- helm ----------------------------------------------------------------------------------


@cache
def _helm() -> tuple[Path, dict[str, str]] | str:
    """helm, and an environment that keeps its configuration and cache out of the home folder;
    or why there is no helm (remembered, so a failed download is tried once per session)."""
    try:
        binary = helm()
    except ToolUnavailable as exc:
        return f"helm is needed for the chart's tests: {exc}"
    home = Path(tempfile.gettempdir()) / f"ghapplets-helm-home-{os.getuid()}"
    env = {**os.environ}
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    return binary, env


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    found = _helm()
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    binary, env = found
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=120
    )


def value_args(files: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for file in files:
        args += ["-f", str(file)]
    for setting in sets:
        args += ["--set", setting]
    return args


@cache
def _render(files: tuple[Path, ...], sets: tuple[str, ...]) -> str:
    done = run_helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--kube-version", KUBE_VERSION, *value_args(files, sets),
    )  # fmt: skip
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return done.stdout


def render(*files: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The chart's objects with these values files (after values.yaml) and --set values."""
    return [doc for doc in yaml.safe_load_all(_render(files, sets)) if doc]


def render_error(*files: Path, sets: tuple[str, ...] = ()) -> str:
    done = run_helm(
        "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION,
        *value_args(files, sets),
    )  # fmt: skip
    assert done.returncode != 0, f"helm template accepted {sets}"
    return done.stderr


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return [d["kind"] for d in docs]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The roles' workloads: what runs serve, gateway or worker (not the backup CronJob)."""
    return [d for d in docs if d["kind"] in WORKLOADS and d["kind"] != "CronJob"]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"])
    return dict(workload["spec"]["template"])


def pods(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, pod spec) of every pod the objects make, bare pods (the helm test) included."""
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield f"{doc['kind']} {doc['metadata']['name']}", pod_template(doc)["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod {doc['metadata']['name']}", doc["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def role_of(workload: dict[str, Any]) -> str:
    return str(workload["metadata"]["labels"]["app.kubernetes.io/component"])


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    spec = pod_template(workload)["spec"]
    return next(c for c in spec["containers"] if c["name"] == role_of(workload))


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def mounts_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(v for v in spec["volumes"] if v["name"] == name))


def selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# the values files and the settings each scenario renders with
SCENARIOS: dict[str, tuple[tuple[Path, ...], tuple[str, ...]]] = {
    "embedded": ((), ()),
    "ha": ((HA,), ()),
    "openshift": ((OPENSHIFT,), ()),
    "ha-openshift": ((HA, OPENSHIFT), ()),
    "embedded-everything": ((), (*(OPTIONAL[f][0] for f in EMBEDDED_FEATURES), *EVERYTHING)),
    "ha-everything": ((HA,), (*(s for s, _ in OPTIONAL.values()), *EVERYTHING)),
    "ha-static": ((HA,), ("gateway.autoscaling.enabled=false", "worker.autoscaling.enabled=false")),
    "kubernetes-secrets": (
        (),
        (
            "config.secrets.backend=kubernetes",
            "config.secrets.path=/var/run/secrets/ghapplets",
            "secrets.volume.secret.secretName=ghapplets-global",
        ),
    ),
    "openbao": (
        (HA,),
        (
            "config.secrets.backend=openbao",
            "config.secrets.address=https://bao.example.com:8200",
            "config.secrets.kubernetes_role=ghapplets",
        ),
    ),
    "no-persistence": ((), ("serve.persistence.enabled=false",)),
    "embedded-backup": ((), ("backup.enabled=true", "secrets.existingSecret=ghapplets")),
    "ha-backup": ((HA,), ("backup.enabled=true",)),
    "openshift-backup": ((OPENSHIFT,), ("backup.enabled=true",)),
}


def scenario(name: str) -> list[dict[str, Any]]:
    files, sets = SCENARIOS[name]
    return render(*files, sets=sets)


# -- lint and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "feature"),
    [((), None), ((HA,), None), ((OPENSHIFT,), None), ((HA, OPENSHIFT), None)]
    + [((), f) for f in EMBEDDED_FEATURES]
    + [((HA,), f) for f in OPTIONAL],
    ids=lambda v: "+".join(p.stem for p in v) or "values" if isinstance(v, tuple) else str(v),
)
def test_helm_lint_strict(files: tuple[Path, ...], feature: str | None) -> None:
    sets = (OPTIONAL[feature][0],) if feature else ()
    done = run_helm("lint", "--strict", str(CHART), *value_args(files, sets))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("name", SCENARIOS)
def test_manifests_pass_the_kubernetes_schemas_strictly(name: str) -> None:
    docs = scenario(name)
    assert docs
    for doc in docs:
        what = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in CRDS:  # no schema here: their fields are checked by tests below
            assert doc["apiVersion"] and doc["spec"], what
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {what}: {path}: {exc.message}")


def test_kubernetes_validate_is_strict() -> None:
    """An unknown field fails, so the test above would see a misspelt key."""
    statefulset = only(scenario("embedded"), "StatefulSet")
    pod_template(statefulset)["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBE_VERSION, strict=True)


# -- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_object_and_workload_carries_the_labels(name: str) -> None:
    docs = scenario(name)
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        what = f"{doc['kind']} {doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == "ghapplets", what
        assert labels.get("app.kubernetes.io/instance") == RELEASE, what
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", what
        assert labels.get("app.kubernetes.io/version") == "0.1.0", what
        assert labels.get("helm.sh/chart") == "ghapplets-0.1.0", what
    assert workloads(docs)
    for workload in workloads(docs):
        what = f"{workload['kind']} {workload['metadata']['name']}"
        component = workload["metadata"]["labels"].get("app.kubernetes.io/component")
        assert component in ROLES, what
        template_labels = pod_template(workload)["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "helm.sh/chart",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by"):  # fmt: skip
            assert template_labels[key] == workload["metadata"]["labels"][key], (what, key)
        assert template_labels["app.kubernetes.io/component"] == component, what
        if "selector" in workload["spec"]:
            assert selected(workload["spec"]["selector"]["matchLabels"], template_labels), what
    for cron in (d for d in docs if d["kind"] == "CronJob"):  # the backup: its jobs and pods too
        job = cron["spec"]["jobTemplate"]
        for labels in (job["metadata"]["labels"], pod_template(cron)["metadata"]["labels"]):
            assert labels == {**labels, **cron["metadata"]["labels"]}, name
            assert labels["app.kubernetes.io/component"] == "backup", name


# -- the two modes -------------------------------------------------------------------------


def test_embedded_is_one_serve_pod_in_a_statefulset_with_a_volume() -> None:
    docs = scenario("embedded")
    assert [w["kind"] for w in workloads(docs)] == ["StatefulSet"]
    statefulset = only(docs, "StatefulSet")
    assert statefulset["metadata"]["labels"]["app.kubernetes.io/component"] == "serve"
    assert statefulset["spec"]["replicas"] == 1
    container = main_container(statefulset)
    assert container["args"][0] == "serve"
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    data = mounts_of(container)["/var/lib/ghapplets"]
    assert data["name"] == claim["metadata"]["name"]
    assert env_of(container)["GHAPPLETS_DATA_DIR"]["value"].startswith("/var/lib/ghapplets")
    # the claim template's labels never change (a StatefulSet's templates are immutable)
    assert "helm.sh/chart" not in claim["metadata"]["labels"]
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"]
    for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert kind not in kinds(docs)
    services = {s["metadata"]["name"]: s for s in docs if s["kind"] == "Service"}
    assert statefulset["spec"]["serviceName"] in services


def test_embedded_without_persistence_uses_an_empty_dir() -> None:
    statefulset = only(scenario("no-persistence"), "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    assert "emptyDir" in volume(pod_template(statefulset)["spec"], "data")


def _ha_replicas(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> int:
    """The fewest pods a Deployment runs: its replicas, or its autoscaler's minimum."""
    name = deployment["metadata"]["name"]
    scalers = [
        d["spec"]["minReplicas"] for d in docs
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == name
    ] + [
        d["spec"]["minReplicaCount"] for d in docs
        if d["kind"] == "ScaledObject" and d["spec"]["scaleTargetRef"]["name"] == name
    ]  # fmt: skip
    if "replicas" in deployment["spec"]:
        assert not scalers, f"{name}: replicas and an autoscaler would fight"
        return int(deployment["spec"]["replicas"])
    assert len(scalers) == 1, f"{name}: no replicas and {len(scalers)} autoscalers"
    return int(scalers[0])


@pytest.mark.parametrize("name", ["ha", "ha-static", "ha-everything", "ha-openshift"])
def test_ha_runs_two_or_more_gateways_and_workers_with_budgets_and_spread(name: str) -> None:
    docs = scenario(name)
    deployments = {role_of(d): d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"gateway", "worker"}
    assert "StatefulSet" not in kinds(docs)
    for role, deployment in deployments.items():
        assert _ha_replicas(docs, deployment) >= 2, role
        labels = pod_template(deployment)["metadata"]["labels"]
        budgets = [
            d
            for d in docs
            if d["kind"] == "PodDisruptionBudget"
            and selected(d["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(budgets) == 1, role
        assert budgets[0]["spec"] == {**budgets[0]["spec"], "minAvailable": 1}
        spec = pod_template(deployment)["spec"]
        spread = [
            c for c in spec.get("topologySpreadConstraints", [])
            if c["topologyKey"] == "kubernetes.io/hostname"
            and selected(c["labelSelector"]["matchLabels"], labels)
        ]  # fmt: skip
        anti = spec.get("affinity", {}).get("podAntiAffinity", {})
        preferred = anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        required = anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        terms = [t["podAffinityTerm"] for t in preferred] + required
        apart = [
            t for t in terms
            if t["topologyKey"] == "kubernetes.io/hostname"
            and selected(t["labelSelector"]["matchLabels"], labels)
        ]  # fmt: skip
        assert spread and apart, f"{role}: not spread across nodes"
        args = main_container(deployment)["args"]
        assert args[0] == role


def test_ha_values_file_has_no_replica_count_or_minimum_below_two() -> None:
    values = yaml.safe_load(HA.read_text())
    for role in ("gateway", "worker"):
        assert values[role]["replicaCount"] >= 2, role
        assert values[role]["autoscaling"]["enabled"] is True, role
        assert values[role]["autoscaling"]["minReplicas"] >= 2, role
        assert values[role]["pdb"]["enabled"] is True, role


def test_ha_uses_postgresql_and_nats_whose_urls_come_from_an_existing_secret() -> None:
    docs = scenario("ha")
    config = yaml.safe_load(only(docs, "ConfigMap")["data"]["ghapplets.yaml"])
    assert config["storage"]["backend"] == "postgresql"
    assert config["broker"]["backend"] == "nats"
    assert "url" not in config["storage"] and "url" not in config["broker"]
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        env = env_of(main_container(deployment))
        for name, key in (
            ("GHAPPLETS_STORAGE__URL", "storage-url"),
            ("GHAPPLETS_BROKER__URL", "broker-url"),
        ):
            assert env[name]["valueFrom"]["secretKeyRef"] == {
                "name": "ghapplets-backends",
                "key": key,
            }
        assert main_container(deployment)["envFrom"] == [{"secretRef": {"name": "ghapplets"}}]


def test_the_worker_serves_its_health_endpoint_on_a_port() -> None:
    worker = only(scenario("ha"), "Deployment", f"{RELEASE}-ghapplets-worker")
    args = main_container(worker)["args"]
    port = int(args[args.index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in main_container(worker)["ports"]}
    assert ports["http"] == port == 8081


# -- every pod -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_pod_and_container_is_locked_down(name: str) -> None:
    for what, spec in pods(scenario(name)):
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, what
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, what
        # the token only where OpenBao's Kubernetes login needs it (not in the helm test)
        token = name == "openbao" and not what.startswith("Pod ")
        assert spec["automountServiceAccountToken"] is token, what
        writable = {m["mountPath"] for c in containers(spec) for m in c.get("volumeMounts", [])}
        for container in containers(spec):
            security = container["securityContext"]
            where = f"{what}: container {container['name']}"
            assert security["runAsNonRoot"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert security.get("privileged", False) is False, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (where, bound)
            tmp = mounts_of(container)["/tmp"]
            assert "emptyDir" in volume(spec, tmp["name"]), where
        assert "/tmp" in writable, what


@pytest.mark.parametrize("name", SCENARIOS)
def test_roles_have_probes_on_healthz_and_readyz_and_a_writable_data_folder(name: str) -> None:
    for workload in workloads(scenario(name)):
        container = main_container(workload)
        http = next(p for p in container["ports"] if p["name"] == "http")
        args = container["args"]
        assert int(args[args.index("--port") + 1]) == http["containerPort"]
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")):  # fmt: skip
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (probe, name)
        data = mounts_of(container)["/var/lib/ghapplets"]
        assert not data.get("readOnly"), name
        assert env_of(container)["GHAPPLETS_DATA_DIR"]["value"].startswith("/var/lib/ghapplets/")


def test_pod_security_sets_the_image_user_by_default_and_leaves_it_to_openshift() -> None:
    for what, spec in pods(scenario("embedded")):
        assert spec["securityContext"]["runAsUser"] == 10001, what
        assert spec["securityContext"]["fsGroup"] == 10001, what
    for name in ("openshift", "ha-openshift"):
        for what, spec in pods(scenario(name)):
            for context in [
                spec["securityContext"],
                *(c["securityContext"] for c in containers(spec)),
            ]:
                assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), (name, what)
    # openshift: true alone is enough, whatever podSecurityContext says
    for what, spec in pods(render(sets=("openshift=true",))):
        assert not {"runAsUser", "fsGroup"} & set(spec["securityContext"]), what
    # and the values can be nulled on any platform
    nulled = render(sets=("podSecurityContext.runAsUser=null", "podSecurityContext.fsGroup=null"))
    for what, spec in pods(nulled):
        assert not {"runAsUser", "fsGroup"} & set(spec["securityContext"]), what


def test_config_map_is_mounted_as_ghapplets_yaml() -> None:
    docs = scenario("ha")
    config_map = only(docs, "ConfigMap")
    assert yaml.safe_load(config_map["data"]["ghapplets.yaml"])["project"] == "ghapplets"
    for workload in workloads(docs):
        container = main_container(workload)
        mount = mounts_of(container)["/etc/ghapplets/ghapplets.yaml"]
        assert mount["subPath"] == "ghapplets.yaml" and mount["readOnly"] is True
        source = volume(pod_template(workload)["spec"], mount["name"])
        assert source["configMap"]["name"] == config_map["metadata"]["name"]
        assert env_of(container)["GHAPPLETS_CONFIG"]["value"] == "/etc/ghapplets"


def _checksums(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {
        w["metadata"]["name"]: pod_template(w)["metadata"]["annotations"]["checksum/config"]
        for w in workloads(docs)
    }


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_checksum_annotation_follows_the_configuration(files: tuple[Path, ...]) -> None:
    before = _checksums(render(*files))
    config_map = only(render(*files), "ConfigMap")
    assert len(before) >= 1
    assert all(len(c) == 64 for c in before.values())
    assert _checksums(render(*files)) == before  # stable
    for change in ("config.logging.level=debug", "config.server.drain_timeout=60",
                   "config.sources.jira.kind=jira"):  # fmt: skip
        after = _checksums(render(*files, sets=(change,)))
        assert after.keys() == before.keys()
        assert all(after[n] != before[n] for n in before), change
    # a change outside the configuration leaves it alone
    assert (
        _checksums(render(*files, sets=("serve.podLabels.team=a", "gateway.podLabels.team=a")))
        == before
    )
    assert (
        hashlib.sha256(config_map["data"]["ghapplets.yaml"].encode()).hexdigest()
        not in before.values()
    )


def test_termination_grace_period_is_above_the_drain_timeout(tmp_path: Path) -> None:
    fractional = tmp_path / "drain.yaml"  # --set would make 7.5 a string
    fractional.write_text("config:\n  server:\n    drain_timeout: 7.5\n")
    for docs, drain in (
        (scenario("embedded"), 30),
        (scenario("ha"), 30),
        (render(sets=("config.server.drain_timeout=100",)), 100),
        (render(HA, fractional), 7.5),
    ):
        for workload in workloads(docs):
            grace = pod_template(workload)["spec"]["terminationGracePeriodSeconds"]
            assert grace > drain, (workload["metadata"]["name"], grace, drain)
    explicit = render(sets=("terminationGracePeriodSeconds=90",))
    assert (
        pod_template(only(explicit, "StatefulSet"))["spec"]["terminationGracePeriodSeconds"] == 90
    )
    error = render_error(sets=("terminationGracePeriodSeconds=30",))
    assert "terminationGracePeriodSeconds" in error and "drain_timeout" in error


# -- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in SCENARIOS if "everything" not in n])
def test_no_secret_is_rendered_without_secrets_create(name: str) -> None:
    assert "Secret" not in kinds(scenario(name))


def test_secrets_create_renders_a_secret_the_pods_read() -> None:
    sets = ("secrets.create=true", "secrets.values.GITHUB_WEBHOOK_SECRET=s3cret")
    for files in ((), (HA,)):
        docs = render(*files, sets=sets)
        secret = only(docs, "Secret")
        assert secret["stringData"] == {"GITHUB_WEBHOOK_SECRET": "s3cret"}
        for workload in workloads(docs):
            refs = [e["secretRef"]["name"] for e in main_container(workload)["envFrom"]]
            assert secret["metadata"]["name"] in refs
            assert "checksum/secret" in pod_template(workload)["metadata"]["annotations"]


def test_existing_secret_wiring() -> None:
    docs = render(sets=(
        "secrets.existingSecret=mine",
        "secrets.env.JIRA_TOKEN.key=jira-token",
        "secrets.env.GHAPPLETS_SECRET_KEY.secret=keys",
        "secrets.env.GHAPPLETS_SECRET_KEY.key=master",
    ))  # fmt: skip
    container = main_container(only(docs, "StatefulSet"))
    assert container["envFrom"] == [{"secretRef": {"name": "mine"}}]
    env = env_of(container)
    assert env["JIRA_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "jira-token"}
    assert env["GHAPPLETS_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "keys",
        "key": "master",
    }
    assert "envFrom" not in main_container(only(scenario("embedded"), "StatefulSet"))


def test_kubernetes_secrets_backend_mounts_the_secret_volume_read_only() -> None:
    docs = scenario("kubernetes-secrets")
    statefulset = only(docs, "StatefulSet")
    mount = mounts_of(main_container(statefulset))["/var/run/secrets/ghapplets"]
    assert mount["readOnly"] is True
    source = volume(pod_template(statefulset)["spec"], mount["name"])
    assert source["secret"] == {"secretName": "ghapplets-global"}
    # reading a mounted volume needs no API access: no token, no Role
    assert pod_template(statefulset)["spec"]["automountServiceAccountToken"] is False
    assert not {"Role", "RoleBinding", "ClusterRole"} & set(kinds(docs))


def test_openbao_kubernetes_login_gets_the_service_account_token() -> None:
    docs = scenario("openbao")
    assert only(docs, "ServiceAccount")["automountServiceAccountToken"] is True
    for workload in workloads(docs):
        assert pod_template(workload)["spec"]["automountServiceAccountToken"] is True
    assert only(scenario("ha"), "ServiceAccount")["automountServiceAccountToken"] is False


# -- applets -------------------------------------------------------------------------------


def test_applets_from_config_maps_and_from_a_volume() -> None:
    for files in ((), (HA,)):
        docs = render(*files, sets=(
            "applets.configMaps[0].name=triage",
            "applets.configMaps[0].configMap=triage-applet",
            "applets.configMaps[1].name=notify",
            "applets.volume.persistentVolumeClaim.claimName=ghapplets-applets",
        ))  # fmt: skip
        for workload in workloads(docs):
            spec = pod_template(workload)["spec"]
            mounts = mounts_of(main_container(workload))
            triage = mounts["/etc/ghapplets/applets/triage"]
            assert triage["readOnly"] is True
            assert volume(spec, triage["name"])["configMap"]["name"] == "triage-applet"
            notify = mounts["/etc/ghapplets/applets/notify"]
            assert volume(spec, notify["name"])["configMap"]["name"] == "notify"
            folder = mounts["/etc/ghapplets/applets"]
            assert folder["readOnly"] is True
            claim = volume(spec, folder["name"])["persistentVolumeClaim"]
            assert claim == {"claimName": "ghapplets-applets"}


def test_applets_from_an_image_of_ones_own() -> None:
    docs = render(sets=("image.repository=registry.example.com/acme/hooks", "image.tag=2026.1"))
    for _, spec in pods(docs):
        assert {c["image"] for c in spec["containers"]} == {
            "registry.example.com/acme/hooks:2026.1"
        }
    # no applet mount hides the image's /etc/ghapplets/applets
    assert "/etc/ghapplets/applets" not in mounts_of(main_container(only(docs, "StatefulSet")))
    digest = "sha256:" + "a" * 64
    docs = render(sets=(f"image.digest={digest}",))
    assert main_container(only(docs, "StatefulSet"))["image"].endswith(f"@{digest}")


# -- optional objects ----------------------------------------------------------------------


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_optional_objects_are_off_by_default(files: tuple[Path, ...]) -> None:
    present = set(kinds(render(*files)))
    for _, kind in OPTIONAL.values():
        assert kind not in present


@pytest.mark.parametrize(
    ("files", "feature"),
    [((), f) for f in EMBEDDED_FEATURES] + [((HA,), f) for f in OPTIONAL],
    ids=lambda v: ("ha" if v else "embedded") if isinstance(v, tuple) else str(v),
)
def test_each_optional_object_appears_only_when_enabled(
    files: tuple[Path, ...], feature: str
) -> None:
    setting, kind = OPTIONAL[feature]
    docs = render(*files, sets=(setting,))
    objects = [d for d in docs if d["kind"] == kind]
    assert objects
    others = {k for f, (_, k) in OPTIONAL.items() if f != feature}
    assert not others & set(kinds(docs))


def _webhook_service(docs: list[dict[str, Any]]) -> dict[str, Any]:
    role = "gateway" if any(d["kind"] == "Deployment" for d in docs) else "serve"
    return only(docs, "Service", f"{RELEASE}-ghapplets-{role}")


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_ingress_and_route_send_webhooks_to_the_webhook_service(files: tuple[Path, ...]) -> None:
    docs = render(*files, sets=("ingress.enabled=true", "route.enabled=true"))
    service = _webhook_service(docs)
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    rule = only(docs, "Ingress")["spec"]["rules"][0]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/hooks"
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"name": "http"},
    }
    route = only(docs, "Route")
    assert route["apiVersion"] == "route.openshift.io/v1"
    assert route["spec"]["to"] == {
        "kind": "Service",
        "name": service["metadata"]["name"],
        "weight": 100,
    }
    assert route["spec"]["port"] == {"targetPort": "http"}
    assert route["spec"]["path"] == "/hooks"
    assert route["spec"]["tls"]["termination"] == "edge"


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_service_monitor_scrapes_metrics_of_every_role(files: tuple[Path, ...]) -> None:
    docs = render(*files, sets=("serviceMonitor.enabled=true",))
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    scraped = {
        s["metadata"]["labels"]["app.kubernetes.io/component"]
        for s in docs
        if s["kind"] == "Service"
        and selected(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        and any(p["name"] == "metrics" for p in s["spec"]["ports"])
    }
    assert scraped == {role_of(w) for w in workloads(docs)}
    for workload in workloads(docs):
        container = main_container(workload)
        metrics = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
        address = env_of(container)["GHAPPLETS_SERVER__METRICS_ADDRESS"]["value"]
        assert address.endswith(f":{metrics}")


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_network_policy_selects_each_role(files: tuple[Path, ...]) -> None:
    docs = render(*files, sets=("networkPolicy.enabled=true",))
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for workload in workloads(docs):
        labels = pod_template(workload)["metadata"]["labels"]
        (policy,) = [
            p for p in policies if selected(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        assert ports == ({"metrics"} if role_of(workload) == "worker" else {"http", "metrics"})


@pytest.mark.parametrize("prefix", [None, "acme"])
def test_keda_scales_the_workers_on_their_jetstream_consumers(prefix: str | None) -> None:
    sets = ("keda.enabled=true",) + ((f"config.broker.prefix={prefix}",) if prefix else ())
    docs = render(HA, sets=sets)
    scaled = only(docs, "ScaledObject")
    worker = only(docs, "Deployment", f"{RELEASE}-ghapplets-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 2
    # the broker's own names for its streams and durable consumers
    broker = SimpleNamespace(prefix=prefix or "ghapplets")
    expected = {
        (NatsBroker.stream_name(broker, s), NatsBroker.durable_name(broker, s))  # type: ignore[arg-type]
        for s in ("jobs", "events")
    }
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    assert {(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in triggers} == expected
    assert (
        "GHAPPLETS_JOBS" if prefix is None else "ACME_JOBS",
        f"{prefix or 'ghapplets'}-jobs",
    ) in expected
    for trigger in triggers:
        assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA wants strings
    # KEDA makes the workers' HPA: no second one, and the Deployment leaves replicas to it
    scalers = [
        d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"
    ]
    assert worker["metadata"]["name"] not in scalers
    assert "replicas" not in worker["spec"]


# -- scheduled backups ---------------------------------------------------------------------


def backup_parts(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The backup CronJob, and its pod spec."""
    cron = only(docs, "CronJob")
    return cron, pod_template(cron)["spec"]


def test_the_backup_cronjob_runs_backup_into_its_volume_keeping_seven() -> None:
    docs = scenario("embedded-backup")
    cron, spec = backup_parts(docs)
    assert cron["metadata"]["name"] == f"{RELEASE}-ghapplets-backup"
    assert cron["spec"]["schedule"] == "0 2 * * *" and cron["spec"]["suspend"] is False
    assert "timeZone" not in cron["spec"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] == 3600
    assert cron["spec"]["successfulJobsHistoryLimit"] == 3
    assert cron["spec"]["failedJobsHistoryLimit"] == 3
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 2 and job["activeDeadlineSeconds"] == 3600
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["args"] == ["backup", "--dir", "/backups", "--keep", "7"]
    assert "command" not in container  # the image's entrypoint: ghapplets
    assert env_of(container)["TMPDIR"]["value"] == "/backups"  # spooled on the volume
    backups = mounts_of(container)["/backups"]
    claim = only(docs, "PersistentVolumeClaim")
    assert volume(spec, backups["name"])["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "storageClassName" not in claim["spec"]  # the cluster's default class


def test_the_backup_is_off_by_default_and_its_settings_reach_the_cronjob() -> None:
    for files in ((), (HA,)):
        present = kinds(render(*files))
        assert "CronJob" not in present and "PersistentVolumeClaim" not in present
    docs = render(sets=(
        "backup.enabled=true", "backup.schedule=*/30 4-6 * * 1-5", "backup.keep=3",
        "backup.includeKey=true", "backup.suspend=true", "backup.timeZone=Europe/Berlin",
        "backup.concurrencyPolicy=Replace", "backup.startingDeadlineSeconds=null",
        "backup.activeDeadlineSeconds=null", "backup.backoffLimit=0",
        "backup.persistence.size=50Gi", "backup.persistence.storageClassName=fast",
        "backup.podLabels.team=ops", "backup.priorityClassName=low",
        "backup.extraEnv[0].name=GHAPPLETS_LOGGING__LEVEL", "backup.extraEnv[0].value=debug",
    ))  # fmt: skip
    cron, spec = backup_parts(docs)
    assert cron["spec"]["schedule"] == "*/30 4-6 * * 1-5"
    assert cron["spec"]["timeZone"] == "Europe/Berlin" and cron["spec"]["suspend"] is True
    assert cron["spec"]["concurrencyPolicy"] == "Replace"
    assert "startingDeadlineSeconds" not in cron["spec"]
    job = cron["spec"]["jobTemplate"]["spec"]
    assert "activeDeadlineSeconds" not in job and job["backoffLimit"] == 0
    (container,) = spec["containers"]
    assert container["args"] == ["backup", "--dir", "/backups", "--keep", "3", "--include-key"]
    assert env_of(container)["GHAPPLETS_LOGGING__LEVEL"]["value"] == "debug"
    assert pod_template(cron)["metadata"]["labels"]["team"] == "ops"
    assert spec["priorityClassName"] == "low"
    claim = only(docs, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    # an existing claim for the archives: the chart makes none
    docs = render(sets=("backup.enabled=true", "backup.persistence.existingClaim=archive"))
    assert "PersistentVolumeClaim" not in kinds(docs)
    _, spec = backup_parts(docs)
    assert volume(spec, "backups")["persistentVolumeClaim"] == {"claimName": "archive"}


@pytest.mark.parametrize("name", ["embedded-backup", "ha-backup", "openshift-backup"])
def test_the_backup_pod_reads_the_same_project_and_secrets_as_the_roles(name: str) -> None:
    docs = scenario(name)
    _, spec = backup_parts(docs)
    (container,) = spec["containers"]
    role = workloads(docs)[0]
    theirs, ours = main_container(role), container
    assert ours["image"] == theirs["image"]
    assert ours.get("envFrom") == theirs.get("envFrom")
    ours_env, theirs_env = env_of(ours), env_of(theirs)
    for variable, item in theirs_env.items():
        if variable != "GHAPPLETS_SERVER__METRICS_ADDRESS":  # no server in a backup
            assert ours_env[variable] == item, variable
    assert ours["securityContext"] == theirs["securityContext"]
    role_spec = pod_template(role)["spec"]
    assert spec["securityContext"] == role_spec["securityContext"]
    assert spec["serviceAccountName"] == role_spec["serviceAccountName"]
    assert spec["automountServiceAccountToken"] == role_spec["automountServiceAccountToken"]
    assert spec["enableServiceLinks"] is False
    project = {path for path in mounts_of(theirs) if path.startswith("/etc/ghapplets")}
    assert project and {p: mounts_of(ours)[p] for p in project} == {
        p: mounts_of(theirs)[p] for p in project
    }
    config = mounts_of(ours)["/etc/ghapplets/ghapplets.yaml"]["name"]
    assert volume(spec, config) == volume(role_spec, config)


def test_embedded_backup_mounts_the_serve_volume_on_the_serve_pods_node() -> None:
    docs = scenario("embedded-backup")
    statefulset = only(docs, "StatefulSet")
    _, spec = backup_parts(docs)
    (container,) = spec["containers"]
    data = mounts_of(container)["/var/lib/ghapplets"]
    assert not data.get("readOnly")  # a reader of SQLite's WAL writes the -shm file
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    claim = f"{template['metadata']['name']}-{statefulset['metadata']['name']}-0"  # pod 0's claim
    assert volume(spec, data["name"])["persistentVolumeClaim"] == {"claimName": claim}
    assert mounts_of(main_container(statefulset))["/var/lib/ghapplets"]["name"] == "data"
    (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    serve_labels = pod_template(statefulset)["metadata"]["labels"]
    assert selected(term["labelSelector"]["matchLabels"], serve_labels)
    backup_labels = pod_template(only(docs, "CronJob"))["metadata"]["labels"]
    assert not selected(term["labelSelector"]["matchLabels"], backup_labels)
    # the serve pod's own existing claim, and its tolerations (the job must fit on its node)
    docs = render(sets=(
        "backup.enabled=true", "serve.persistence.existingClaim=ghapplets-data",
        "serve.tolerations[0].key=dedicated", "serve.tolerations[0].operator=Exists",
    ))  # fmt: skip
    _, spec = backup_parts(docs)
    assert volume(spec, "data")["persistentVolumeClaim"] == {"claimName": "ghapplets-data"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    docs = render(sets=(
        "backup.enabled=true", "serve.tolerations[0].key=dedicated",
        "serve.tolerations[0].operator=Exists", "backup.tolerations[0].key=other",
        "backup.tolerations[0].operator=Exists",
    ))  # fmt: skip
    assert backup_parts(docs)[1]["tolerations"] == [{"key": "other", "operator": "Exists"}]


def test_ha_backup_reads_postgresql_from_any_node() -> None:
    docs = scenario("ha-backup")
    _, spec = backup_parts(docs)
    (container,) = spec["containers"]
    assert "affinity" not in spec and "tolerations" not in spec
    data = mounts_of(container)["/var/lib/ghapplets"]
    assert "emptyDir" in volume(spec, data["name"])
    ref = env_of(container)["GHAPPLETS_STORAGE__URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "ghapplets-backends", "key": "storage-url"}
    claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == [f"{RELEASE}-ghapplets-backup"]
    docs = render(HA, sets=("backup.enabled=true", "backup.nodeSelector.pool=batch"))
    assert backup_parts(docs)[1]["nodeSelector"] == {"pool": "batch"}


def test_backup_args_are_options_of_the_backup_command() -> None:
    cron, _ = backup_parts(render(sets=("backup.enabled=true", "backup.includeKey=true")))
    command, *args = main_container(cron)["args"]
    assert command == "backup"
    flags = {a for a in args if a.startswith("--")}
    assert flags == {"--dir", "--keep", "--include-key"} and flags <= _options("backup")


# -- wrong values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "setting", "named"),
    [
        ((), "gateway.replicaCount=-1", "/gateway/replicaCount"),
        ((HA,), "worker.replicaCount=-1", "/worker/replicaCount"),
        ((HA,), "gateway.autoscaling.minReplicas=0", "/gateway/autoscaling/minReplicas"),
        ((), "replicaCount=2", "'replicaCount'"),  # no such top-level key
        ((), "colour=blue", "'colour'"),
        ((), "serve.replicas=3", "'replicas'"),
        ((), "mode=ha", "/mode"),
        ((), "image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ((), "serve.processes=0", "/serve/processes"),
        ((), "service.port=70000", "/service/port"),
        ((), "config.storage.backend=mysql", "/config/storage/backend"),
        ((HA,), "config.storage.backend=sqlite", "/config/storage/backend"),
        ((HA,), "config.broker.backend=sqlite", "/config/broker/backend"),
        ((), "keda.streams[0]=dead", "/keda/streams"),
        ((), "podSecurityContext.runAsUser=0", "/podSecurityContext/runAsUser"),
        (
            (),
            "securityContext.readOnlyRootFilesystem=false",
            "/securityContext/readOnlyRootFilesystem",
        ),
        ((), "keda.enabled=true", "keda.enabled"),
        ((HA,), "secrets.existingSecret=", "GHAPPLETS_SECRET_KEY"),
        ((), "config.secrets.backend=kubernetes", "secrets.volume"),
        ((HA,), "gateway.pdb.maxUnavailable=1", "gateway.pdb"),
        ((), "backup.keep=0", "/backup/keep"),
        ((), "backup.schedule=daily", "/backup/schedule"),
        ((), "backup.schedule=0 2 * *", "/backup/schedule"),
        ((), "backup.timeZone=Europe Berlin", "/backup/timeZone"),
        ((), "backup.concurrencyPolicy=Sometimes", "/backup/concurrencyPolicy"),
        ((), "backup.startingDeadlineSeconds=5", "/backup/startingDeadlineSeconds"),
        ((), "backup.persistence.size=lots", "/backup/persistence/size"),
        ((), "backup.persistence.storageClass=fast", "'storageClass'"),
        ((), "backup.retention=7", "'retention'"),
        ((), "backup.enabled=yes", "/backup/enabled"),
    ],
)
def test_a_wrong_value_fails_naming_it(files: tuple[Path, ...], setting: str, named: str) -> None:
    error = render_error(*files, sets=(setting,))
    assert named in error, error


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("serve.persistence.enabled=false", "serve.persistence.enabled is false"),
        ("serve.persistence.accessModes={ReadWriteOncePod}", "ReadWriteOncePod"),
    ],
)
def test_an_embedded_backup_refuses_a_data_volume_it_cannot_mount(setting: str, named: str) -> None:
    error = render_error(sets=("backup.enabled=true", setting))
    assert named in error and "backup.enabled" in error, error


@pytest.mark.parametrize("schedule", ["@daily", "@every 6h", "0 */4 * * *", "30 2 * * SUN"])
def test_the_schema_takes_the_schedules_kubernetes_takes(schedule: str) -> None:
    cron, _ = backup_parts(render(sets=("backup.enabled=true", f"backup.schedule={schedule}")))
    assert cron["spec"]["schedule"] == schedule


def test_the_schema_checks_config_keys_as_ghapplets_does() -> None:
    """The few keys of ``config`` the chart's schema checks, the way ghapplets' models do."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]

    def model(cls: type[BaseModel], key: str) -> dict[str, Any]:
        return dict(cls.model_json_schema()["properties"][key])

    assert config["project"]["pattern"] == model(ProjectConfig, "project")["pattern"]
    storage = config["storage"]["properties"]
    assert storage["backend"]["enum"] == model(StorageConfig, "backend")["enum"]
    broker = config["broker"]["properties"]
    assert broker["backend"]["enum"] == model(BrokerConfig, "backend")["enum"]
    assert broker["replicas"]["enum"] == model(BrokerConfig, "replicas")["enum"]
    assert broker["prefix"]["pattern"] == model(BrokerConfig, "prefix")["pattern"]
    logging = config["logging"]["properties"]
    assert logging["format"]["enum"] == model(LoggingConfig, "format")["enum"]
    backends = {kind.value for kind in BackendKind} | {VAULT_ALIAS}
    assert set(config["secrets"]["properties"]["backend"]["enum"]) == backends
    applet = schema["properties"]["applets"]["properties"]["configMaps"]["items"]
    assert applet["properties"]["name"]["pattern"] == NAME_PATTERN


# -- the configuration is one ghapplets accepts --------------------------------------------

# stand-ins for the Secret keys the pods read, shaped as ghapplets expects them
SECRET_STAND_INS = {
    "storage-url": "postgresql://ghapplets:stand-in@postgres:5432/ghapplets",
    "broker-url": "nats://nats-0:4222,nats://nats-1:4222,nats://nats-2:4222",
}


def _validate(
    docs: list[dict[str, Any]], folder: Path, secret_env: bool = True
) -> subprocess.CompletedProcess[str]:
    """``ghapplets validate`` on the ConfigMap's ghapplets.yaml in a folder laid out as the image
    is (applets/ and blueprints/ beside it, empty), with the first workload's environment."""
    folder.mkdir()
    (folder / "applets").mkdir()
    (folder / "blueprints").mkdir()
    (folder / "ghapplets.yaml").write_text(only(docs, "ConfigMap")["data"]["ghapplets.yaml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
    for item in main_container(workloads(docs)[0]).get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif secret_env:
            env[item["name"]] = SECRET_STAND_INS[item["valueFrom"]["secretKeyRef"]["key"]]
    env["GITHUB_WEBHOOK_SECRET"] = "stand-in"  # from existingSecret (envFrom)
    env["GHAPPLETS_CONFIG"] = str(folder)
    env["GHAPPLETS_DATA_DIR"] = str(folder / "data")
    return subprocess.run(
        [sys.executable, "-m", "ghapplets", "validate", "--project", str(folder)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "files",
    [(), (HA,), (OPENSHIFT,), (HA, OPENSHIFT)],
    ids=["values", "ha", "openshift", "ha-openshift"],
)
def test_rendered_config_is_a_valid_project(files: tuple[Path, ...], tmp_path: Path) -> None:
    done = _validate(render(*files), tmp_path / "project")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ha_config_gets_its_urls_from_the_secret_environment(tmp_path: Path) -> None:
    """Without the variables the Secret gives, the HA configuration lacks its URLs: they do
    reach ghapplets through GHAPPLETS_STORAGE__URL and GHAPPLETS_BROKER__URL."""
    done = _validate(render(HA), tmp_path / "project", secret_env=False)
    assert done.returncode == 3
    assert "storage.url is required" in done.stdout + done.stderr
    assert "broker.url is required" in done.stdout + done.stderr


# -- NOTES.txt -----------------------------------------------------------------------------


def _notes(*files: Path, sets: tuple[str, ...] = ()) -> str:
    done = run_helm(
        "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
        *value_args(files, sets),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\nNOTES:\n", 1)[1]


@pytest.mark.parametrize(
    ("files", "service"),
    [((), "rel-ghapplets-serve"), ((HA,), "rel-ghapplets-gateway")],
    ids=["embedded", "ha"],
)
def test_notes_tell_how_to_send_a_first_webhook(files: tuple[Path, ...], service: str) -> None:
    notes = _notes(*files)
    assert f"kubectl -n {NAMESPACE} port-forward svc/{service} 8080:8080" in notes
    (send,) = [
        line.strip() for line in notes.splitlines() if line.strip().startswith("ghapplets send")
    ]
    assert send.startswith("ghapplets send issues.opened --url http://127.0.0.1:8080 ")
    options = {word for word in send.split() if word.startswith("--")}
    assert {"--url", "--kind", "--secret"} <= options
    assert options <= _options("send"), options - _options("send")
    assert "/hooks/github" in notes
    if files:
        assert "get secret ghapplets " in notes


@pytest.mark.parametrize("files", [(), (HA,)], ids=["embedded", "ha"])
def test_notes_tell_how_to_take_a_backup_now(files: tuple[Path, ...]) -> None:
    assert "Backups:" not in _notes(*files)
    sets = ("backup.enabled=true", "backup.keep=4")
    notes = _notes(*files, sets=sets)
    cron, spec = backup_parts(render(*files, sets=sets))
    name = cron["metadata"]["name"]
    assert f"create job --from=cronjob/{name} " in notes
    assert f"`ghapplets {' '.join(main_container(cron)['args'])}`" in notes
    claim = volume(spec, "backups")["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim {claim}." in notes
    assert f'-n {NAMESPACE} wait --for=condition=complete "job/$job"' in notes


# -- the roles' command lines are the CLI's ------------------------------------------------


def _options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    return {o for p in group.commands[command].params for o in p.opts}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["embedded", "ha"])
def test_every_role_argument_is_an_option_of_its_command(name: str) -> None:
    for workload in workloads(scenario(name)):
        command, *args = main_container(workload)["args"]
        assert command == role_of(workload)
        flags = {a for a in args if a.startswith("--")}
        assert flags <= _options(command), (command, flags - _options(command))


class RolePod:
    """A role's container (its args and environment as rendered) run here as a process:
    the host and the ports made local, the project and data folders under ``folder``."""

    def __init__(self, docs: list[dict[str, Any]], workload: dict[str, Any], folder: Path,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.container = main_container(workload)
        self.grace = pod_template(workload)["spec"]["terminationGracePeriodSeconds"]
        project = folder / "etc"
        for sub in ("applets", "blueprints"):
            (project / sub).mkdir(parents=True)
        (project / "ghapplets.yaml").write_text(only(docs, "ConfigMap")["data"]["ghapplets.yaml"])
        self.port, self.metrics = free_port(), free_port()
        args = list(self.container["args"])
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(self.port)
        full = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
        full |= {e["name"]: e["value"] for e in self.container["env"] if "value" in e}
        assert full["GHAPPLETS_SERVER__METRICS_ADDRESS"] == "0.0.0.0:9090"
        full["GHAPPLETS_SERVER__METRICS_ADDRESS"] = f"127.0.0.1:{self.metrics}"
        full["GHAPPLETS_CONFIG"] = str(project)
        full["GHAPPLETS_DATA_DIR"] = str(folder / "var" / "data")
        full |= env
        self.log = folder / "log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ghapplets", *args], env=full,
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{self.log.read_text()}"
            time.sleep(0.2)

    def check_probes_and_metrics(self) -> None:
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert self.container[probe]["httpGet"]["path"] == path
            assert httpx.get(self.base + path, timeout=5).status_code == 200
        assert httpx.get(self.base + "/metrics", timeout=5).status_code == 404  # not here
        scraped = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5)
        assert scraped.status_code == 200 and "# TYPE" in scraped.text

    def stop(self) -> int:
        """SIGTERM, as the kubelet sends it; the exit status, within the grace period."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=self.grace)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_the_serve_pod_command_starts_answers_its_probes_and_drains_on_sigterm(
    tmp_path: Path,
) -> None:
    docs = scenario("embedded")
    pod = RolePod(docs, only(docs, "StatefulSet"), tmp_path, {"GITHUB_WEBHOOK_SECRET": "x"})
    try:
        pod.wait_ready()
        pod.check_probes_and_metrics()
        assert pod.stop() == 0
    finally:
        pod.kill()


def test_the_ha_pods_commands_run_on_postgresql_and_nats_from_the_secret_variables(
    tmp_path: Path, nats_server: NatsServer, pg_empty_url: str
) -> None:
    """The gateway's and the worker's rendered commands, with the variables values-ha.yaml
    takes from its Secrets: both migrate an empty database at once (under the lock), become
    ready, a signed webhook goes through, and SIGTERM stops both within the grace period."""
    docs = scenario("ha")
    secrets = {
        "storage-url": pg_empty_url,
        "broker-url": nats_server.url,
    }
    env = {"GHAPPLETS_SECRET_KEY": generate_key(), "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET}
    deployments = {role_of(d): d for d in docs if d["kind"] == "Deployment"}
    for item in main_container(deployments["gateway"])["env"]:
        if "valueFrom" in item:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
    assert {"GHAPPLETS_STORAGE__URL", "GHAPPLETS_BROKER__URL"} <= set(env)
    # values-ha.yaml asks for R3 streams, which a one-server NATS cannot hold
    assert (
        yaml.safe_load(only(docs, "ConfigMap")["data"]["ghapplets.yaml"])["broker"]["replicas"] == 3
    )
    env["GHAPPLETS_BROKER__REPLICAS"] = "1"
    pods = {
        role: RolePod(docs, deployment, tmp_path / role, env)
        for role, deployment in deployments.items()
    }
    try:
        for pod in pods.values():
            pod.wait_ready()
            pod.check_probes_and_metrics()
        body, headers = signed("helm-chart-1", 1)
        answer = httpx.post(pods["gateway"].base + "/hooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        for role, pod in pods.items():
            assert pod.stop() in (0, -signal.SIGTERM), (role, pod.log.read_text())
    finally:
        for pod in pods.values():
            pod.kill()


# -- the backup CronJob's command, run for real ----------------------------------------------


def project_folder(docs: list[dict[str, Any]], folder: Path) -> Path:
    """The pods' /etc/ghapplets here: the ConfigMap's ghapplets.yaml, as the image lays it out."""
    for sub in ("applets", "blueprints"):
        (folder / sub).mkdir(parents=True)
    (folder / "ghapplets.yaml").write_text(only(docs, "ConfigMap")["data"]["ghapplets.yaml"])
    return folder


def run_backup_job(
    docs: list[dict[str, Any]], places: dict[str, Path], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The backup CronJob's container as rendered (its args and plain variables), run here:
    each path under a key of ``places``, a folder the pod mounts, made that local folder; ``env``
    stands in for the variables that come from Secrets."""
    _, spec = backup_parts(docs)
    (container,) = spec["containers"]
    mounted = list(mounts_of(container))

    def local(text: str) -> str:
        for inside, outside in places.items():
            if text == inside or text.startswith(inside + "/"):
                assert any(m == inside or m.startswith(inside + "/") for m in mounted), inside
                return str(outside) + text[len(inside) :]
        return text

    full = {k: v for k, v in os.environ.items() if not k.startswith("GHAPPLETS_")}
    full |= {e["name"]: local(e["value"]) for e in container["env"] if "value" in e}
    full |= env
    args = [local(arg) for arg in container["args"]]
    return subprocess.run(
        [sys.executable, "-m", "ghapplets", *args], env=full, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def verified_archive(folder: Path, before: set[str]) -> Path:
    """The one archive the job added to ``folder``, checked by ``ghapplets backup verify``."""
    (new,) = {p.name for p in folder.iterdir()} - before
    assert re.fullmatch(r"ghapplets-\d{8}T\d{6}Z\.tgz", new), new
    done = subprocess.run(
        [sys.executable, "-m", "ghapplets", "backup", "verify", str(folder / new)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok:" in done.stdout
    return folder / new


def test_the_backup_jobs_command_backs_up_the_serve_pods_data_while_it_serves(
    tmp_path: Path,
) -> None:
    """The embedded CronJob's command, on the data folder of the serve pod's command while that
    runs (the job shares its volume): an archive with the webhook just accepted in it, and
    the oldest archives beyond the rendered --keep (7) removed."""
    docs = scenario("embedded-backup")
    pod_dir = tmp_path / "serve"
    serve = RolePod(
        docs, only(docs, "StatefulSet"), pod_dir, {"GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET}
    )
    backups = tmp_path / "backups"
    backups.mkdir()
    older = [f"ghapplets-202601{day:02d}T020000Z.tgz" for day in range(1, 9)]
    for name in older:
        (backups / name).write_bytes(b"an older archive")
    try:
        serve.wait_ready()
        body, headers = signed("helm-backup-delivery-1", 1)
        answer = httpx.post(serve.base + "/hooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        places = {"/etc/ghapplets": pod_dir / "etc", "/var/lib/ghapplets": pod_dir / "var",
                  "/backups": backups}  # fmt: skip
        done = run_backup_job(docs, places, {"GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET})
        assert done.returncode == 0, done.stdout + done.stderr
        assert serve.process.poll() is None  # the server went on
    finally:
        serve.kill()
    archive = verified_archive(backups, set(older))
    with tarfile.open(archive) as tar:
        contents = b"".join(tar.extractfile(m).read() for m in tar)  # type: ignore[union-attr]
    assert b"helm-backup-delivery-1" in contents  # the accepted webhook is in the backup
    assert sorted(p.name for p in backups.iterdir()) == [*older[-6:], archive.name]
    assert "removed 2 archive(s)" in done.stdout


def test_the_ha_backup_jobs_command_backs_up_postgresql(
    tmp_path: Path, nats_server: NatsServer, pg_empty_url: str
) -> None:
    """The distributed CronJob's command, with the variables values-ha.yaml takes from its
    Secrets: an archive of the PostgreSQL store, a secret stored through it included."""
    docs = scenario("ha-backup")
    project = project_folder(docs, tmp_path / "etc")
    secrets = {"storage-url": pg_empty_url, "broker-url": nats_server.url}
    _, spec = backup_parts(docs)
    env = {"GHAPPLETS_SECRET_KEY": generate_key(), "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET}
    for item in spec["containers"][0]["env"]:
        if "valueFrom" in item:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
    assert env["GHAPPLETS_STORAGE__URL"] == pg_empty_url
    here = {"GHAPPLETS_CONFIG": str(project), "GHAPPLETS_DATA_DIR": str(tmp_path / "var" / "data"),
            "GHAPPLETS_BROKER__REPLICAS": "1"}  # fmt: skip
    stored = subprocess.run(
        [sys.executable, "-m", "ghapplets", "secrets", "set", "api-token", "--value", "v1"],
        env={**os.environ, **env, **here}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stored.returncode == 0, stored.stdout + stored.stderr
    backups = tmp_path / "backups"
    backups.mkdir()
    places = {"/etc/ghapplets": project, "/var/lib/ghapplets": tmp_path / "var",
              "/backups": backups}  # fmt: skip
    done = run_backup_job(docs, places, env)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = Archive(verified_archive(backups, set())).manifest
    assert manifest.storage == "postgresql" and manifest.counts["secrets"] == 1
