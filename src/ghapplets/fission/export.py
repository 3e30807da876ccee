"""A project as Fission specs: what ``ghapplets export fission`` writes, decided without I/O.

:func:`plan` turns a project's applets and blueprints into an :class:`Export`: the objects of
a ``fission spec apply`` folder (``specs/``), the packages (``packages/<function>/``) and the
applet manifests that send the project's events to Fission (``ghapplets/applets/``):

- an ``Environment`` per Fission environment in use: ``ghapplets-python`` (Fission's Python
  environment, with its builder, which installs the package's ``requirements.txt``) and
  ``ghapplets-binary`` (its binary environment);
- per Python or exec applet, an ``ArchiveUploadSpec`` (the package folder), a ``Package``, a
  ``Function`` and an ``HTTPTrigger`` (``POST /ghapplets/<function>`` on the router, no
  ingress: reached inside the cluster); a Python applet's package is its folder, an entry
  module calling :mod:`ghapplets.fission` and a ``requirements.txt`` naming this Ghapplets; an
  exec applet's its folder and the script of :mod:`.binary`;
- per blueprint that maps (:mod:`.workflows`), a ``Workflow``; the others are refused, each with
  the first task that does not map and why;
- per exported applet, an ``http`` runtime manifest of the same name, subscriptions, retry
  and concurrency, whose ``url`` is its trigger on the router; an ``http`` applet is already
  remote and is kept as it is.

Every object carries its namespace. Names are DNS-1123 labels (:mod:`.names`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ghapplets import __version__
from ghapplets.applets.model import AppletSpec
from ghapplets.blueprints.loader import Blueprint
from ghapplets.fission import ENTRY_FUNCTION, ENTRY_MODULE
from ghapplets.fission.binary import ENTRY_SCRIPT, program_on_path, wrapper
from ghapplets.fission.names import Labels, dns_label
from ghapplets.fission.workflows import API_VERSION, Refusal, compile_blueprint

DEFAULT_ROUTER = "http://router.fission.svc.cluster.local"
ROUTE_PREFIX = "/ghapplets/"
SPECS = "specs"
PACKAGES = "packages"
MANIFESTS = "ghapplets/applets"
FUNCTION_MARGIN = 10  # seconds the function may run past the applet's timeout (the answer)
COLD_START = 30  # seconds a caller waits past the applet's timeout (Fission may cold-start)
MAX_TIMEOUT = 3600  # an applet manifest's longest timeout
SPECIALIZATION_TIMEOUT = 120  # Fission's default and least
IDLE_TIMEOUT = 120


class Environment(StrEnum):
    """The Fission environments an applet runs in."""

    PYTHON = "python"
    BINARY = "binary"

    @property
    def object_name(self) -> str:
        return f"ghapplets-{self.value}"


@dataclass(frozen=True)
class Images:
    """The container images of the environments (public, or mirrored for an air gap)."""

    python: str = "ghcr.io/fission/python-env"
    python_builder: str = "ghcr.io/fission/python-builder"
    binary: str = "ghcr.io/fission/binary-env"


@dataclass(frozen=True)
class Options:
    namespace: str = "default"
    router_url: str = DEFAULT_ROUTER
    images: Images = field(default_factory=Images)
    exec_environment: Environment = Environment.BINARY
    project: str = "ghapplets"


@dataclass(frozen=True)
class Generated:
    """A file the export adds to a package."""

    path: str
    text: str
    executable: bool = False


@dataclass(frozen=True)
class Package:
    """The folder of one function: the applet's folder, plus generated files."""

    applet: str
    function: str
    environment: Environment
    source: Path
    files: tuple[Generated, ...]
    requirement: str | None = None  # a line for requirements.txt (merged with the applet's)

    @property
    def folder(self) -> str:
        return f"{PACKAGES}/{self.function}"


@dataclass(frozen=True)
class SpecFile:
    """One file of ``specs/``: one YAML document or more."""

    name: str
    documents: tuple[dict[str, Any], ...]


@dataclass
class Export:
    specs: list[SpecFile] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # applet -> manifest
    kept: dict[str, Path] = field(default_factory=dict)  # http applet -> its manifest file
    functions: dict[str, str] = field(default_factory=dict)  # applet -> function
    workflows: dict[str, str] = field(default_factory=dict)  # "ns/name version" -> Workflow
    refusals: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def objects(self) -> list[dict[str, Any]]:
        return [doc for spec in self.specs for doc in spec.documents]


def _meta(name: str, options: Options) -> dict[str, str]:
    return {"name": name, "namespace": options.namespace}


def _ref(name: str, options: Options) -> dict[str, str]:
    return {"name": name, "namespace": options.namespace}


def _object(kind: str, name: str, spec: dict[str, Any], options: Options) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(name, options), "spec": spec}


def environment(env: Environment, options: Options) -> dict[str, Any]:
    images = options.images
    spec: dict[str, Any] = {"version": 3, "poolsize": 3}
    if env is Environment.PYTHON:
        spec["runtime"] = {"image": images.python}
        spec["builder"] = {"image": images.python_builder, "command": "build"}
    else:
        spec["runtime"] = {"image": images.binary}
    return _object("Environment", env.object_name, spec, options)


def deployment_config(options: Options) -> dict[str, Any]:
    """``fission-deployment-config.yaml``: the uid ``fission spec apply`` marks its objects
    with; the same for the same project and namespace, so a new export updates the objects."""
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"ghapplets:{options.project}:{options.namespace}")
    return {
        "apiVersion": API_VERSION,
        "kind": "DeploymentConfig",
        "name": options.project,
        "uid": str(uid),
    }


def function_timeout(spec: AppletSpec) -> int:
    return math.ceil(spec.timeout) + FUNCTION_MARGIN


def caller_timeout(spec: AppletSpec) -> int:
    """How long a caller (Ghapplets, a workflow's Task) waits for the function."""
    return min(MAX_TIMEOUT, math.ceil(spec.timeout) + COLD_START)


def _subscriptions(spec: AppletSpec) -> list[Any]:
    return [s.type if s.when is None else {"type": s.type, "when": s.when} for s in spec.on]


def http_manifest(spec: AppletSpec, url: str) -> dict[str, Any]:
    """The manifest that makes ``spec`` an ``http`` applet calling ``url``."""
    manifest: dict[str, Any] = {"name": spec.name, "runtime": "http", "url": url}
    if spec.description:
        manifest["description"] = spec.description
    manifest["on"] = _subscriptions(spec)
    manifest["timeout"] = caller_timeout(spec)
    manifest["concurrency"] = spec.concurrency
    manifest["retry"] = spec.retry.model_dump()
    if not spec.enabled:
        manifest["enabled"] = False
    return manifest


def _entry_module(spec: AppletSpec, secrets_dir: str | None) -> str:
    call = "entry(__file__)" if secrets_dir is None else f"entry(__file__, secrets={secrets_dir!r})"
    return (
        f'"""Fission\'s entry point of the applet {spec.name!r}: written by `ghapplets export '
        'fission`."""\n\n'
        "from ghapplets.fission import entry\n\n"
        f"{ENTRY_FUNCTION} = {call}\n"
    )


class _Planner:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.labels = Labels()
        self.export = Export()
        self.environments: set[Environment] = set()

    def applet(self, spec: AppletSpec) -> None:
        options = self.options
        if spec.runtime == "http":
            assert spec.folder is not None
            self.export.kept[spec.name] = spec.folder / "applet.yaml"
            self.export.notes.append(
                f"applet {spec.name}: runs on the http runtime already; its manifest is kept"
            )
            return
        function = self.labels(spec.name)
        env = Environment.PYTHON if spec.runtime == "python" else options.exec_environment
        self.environments.add(env)
        secret = dns_label(function, suffix="-secrets") if spec.secrets else None
        secrets_dir = f"/secrets/{options.namespace}/{secret}" if secret else None
        assert spec.folder is not None
        if env is Environment.PYTHON:
            files: tuple[Generated, ...] = (
                Generated(f"{ENTRY_MODULE}.py", _entry_module(spec, secrets_dir)),
            )
            entry = f"{ENTRY_MODULE}.{ENTRY_FUNCTION}"
            requirement: str | None = f"ghapplets=={__version__}"
        else:
            script = wrapper(spec, secrets_dir or "/secrets")
            files = (Generated(ENTRY_SCRIPT, script, executable=True),)
            entry, requirement = ENTRY_SCRIPT, None
            program = program_on_path(spec)
            if program is not None:
                self.export.notes.append(
                    f"applet {spec.name}: runs {program!r} from PATH; the binary environment's "
                    "image must have it (or build one that has)"
                )
        package = Package(spec.name, function, env, spec.folder, files, requirement)
        self.export.packages.append(package)
        self.export.functions[spec.name] = function
        archive = {
            "kind": "ArchiveUploadSpec",
            "name": function,
            "include": [f"{package.folder}/*"],
        }
        build = "source" if env is Environment.PYTHON else "deployment"
        self._spec(
            f"package-{function}.yaml",
            archive,
            _object(
                "Package",
                function,
                {
                    "environment": _ref(env.object_name, options),
                    build: {"type": "url", "url": f"archive://{function}"},
                },
                options,
            ),
        )
        function_spec: dict[str, Any] = {
            "environment": _ref(env.object_name, options),
            "package": {"packageref": _ref(function, options), "functionName": entry},
            "InvokeStrategy": {
                "StrategyType": "execution",
                "ExecutionStrategy": {
                    "ExecutorType": "poolmgr",
                    "SpecializationTimeout": SPECIALIZATION_TIMEOUT,
                },
            },
            "functionTimeout": function_timeout(spec),
            "idletimeout": IDLE_TIMEOUT,
            "requestsPerPod": spec.concurrency,
        }
        if secret is not None:
            function_spec["secrets"] = [_ref(secret, options)]
            self.export.notes.append(
                f"applet {spec.name}: create the Kubernetes Secret {secret} in "
                f"{options.namespace}, one key per secret it declares "
                f"({', '.join(spec.secrets)})"
            )
        if spec.connectors:
            self.export.notes.append(
                f"applet {spec.name}: its connectors ({', '.join(spec.connectors)}) are not "
                "reachable from Fission: ctx.action and the connector clients are refused there"
            )
        self._spec(
            f"function-{function}.yaml", _object("Function", function, function_spec, options)
        )
        route = ROUTE_PREFIX + function
        trigger = {
            "functionref": {"type": "name", "name": function},
            "relativeurl": route,
            "methods": ["POST"],
            "createingress": False,
        }
        self._spec(f"route-{function}.yaml", _object("HTTPTrigger", function, trigger, options))
        url = options.router_url.rstrip("/") + route
        self.export.manifests[spec.name] = http_manifest(spec, url)

    def blueprint(self, blueprint: Blueprint, specs: Sequence[AppletSpec]) -> None:
        timeouts = {s.name: float(caller_timeout(s)) for s in specs}
        not_exported = {s.name: "it runs on the http runtime" for s in specs if s.runtime == "http"}
        name = self.labels(f"{blueprint.namespace}-{blueprint.name}")
        found = compile_blueprint(
            blueprint,
            self.export.functions,
            name=name,
            namespace=self.options.namespace,
            timeouts=timeouts,
            not_exported=not_exported,
        )
        if isinstance(found, Refusal):
            self.export.refusals.append(found)
            return
        self.export.workflows[f"{blueprint.namespace}/{blueprint.name} {blueprint.version}"] = name
        self._spec(f"workflow-{name}.yaml", found)
        if "schedule" in blueprint.definition:
            self.export.notes.append(
                f"blueprint {blueprint.namespace}/{blueprint.name}: its schedule is not exported "
                f"(a Fission Workflow has none): start runs with fission workflow run --name {name}"
            )

    def _spec(self, name: str, *documents: dict[str, Any]) -> None:
        self.export.specs.append(SpecFile(name, documents))

    def finish(self) -> Export:
        for env in sorted(self.environments):
            self.export.specs.insert(
                0, SpecFile(f"env-{env.object_name}.yaml", (environment(env, self.options),))
            )
        self.export.specs.insert(
            0, SpecFile("fission-deployment-config.yaml", (deployment_config(self.options),))
        )
        return self.export


def plan(
    applets: Sequence[AppletSpec], blueprints: Sequence[Blueprint], options: Options
) -> Export:
    """What to write for a project whose applets (as discovered) and blueprints (as loaded)
    are given."""
    planner = _Planner(options)
    for spec in sorted(applets, key=lambda s: s.name):
        planner.applet(spec)
    for blueprint in blueprints:
        planner.blueprint(blueprint, applets)
    return planner.finish()
