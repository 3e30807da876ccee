"""Validate objects as the Kubernetes API server would: against Fission's CRD schemas (kept in
``crds/v1/``, see its README), strictly and as written.

Strictly: an unknown field is an error (the API server prunes it, or refuses it under strict
field validation, as ``kubectl apply`` asks by default), so every object schema that lists its
properties gets ``additionalProperties: false`` unless it keeps unknown fields
(``x-kubernetes-preserve-unknown-fields``). ``metadata``, which a CRD leaves open, must have a
``name`` and a ``namespace``, both DNS-1123 labels (what Fission's own validation asks). The
CEL rules (``x-kubernetes-validations``) are not evaluated here: the tests check the ones our
objects meet on their own.

The two kinds ``fission spec apply`` reads that are no CRD, ``ArchiveUploadSpec`` and
``DeploymentConfig``, are checked against their Go types (``pkg/fission-cli/cmd/spec/types``).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds" / "v1"
FILES = {
    "Environment": "fission.io_environments.yaml",
    "Package": "fission.io_packages.yaml",
    "Function": "fission.io_functions.yaml",
    "HTTPTrigger": "fission.io_httptriggers.yaml",
    "Workflow": "fission.io_workflows.yaml",
}
LABEL = {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": LABEL,
        "namespace": LABEL,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_TYPE_META = {"kind": {"type": "string"}, "apiVersion": {"type": "string"}}
NOT_CRDS: dict[str, dict[str, Any]] = {
    "ArchiveUploadSpec": {
        "type": "object",
        "required": ["kind", "name", "include"],
        "properties": {
            **_TYPE_META,
            "name": {"type": "string", "minLength": 1},
            "rootdir": {"type": "string"},
            "include": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "exclude": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "DeploymentConfig": {
        "type": "object",
        "required": ["kind", "name", "uid"],
        "properties": {**_TYPE_META, "name": {"type": "string"}, "uid": {"type": "string"}},
        "additionalProperties": False,
    },
}


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd(kind: str) -> dict[str, Any]:
    """The CRD of ``kind``, as Fission ships it."""
    with (CRDS / FILES[kind]).open() as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded


@functools.cache
def schema(kind: str, version: str) -> dict[str, Any]:
    """The strict schema of ``kind`` objects of ``version``."""
    if kind in NOT_CRDS:
        return NOT_CRDS[kind]
    definition = crd(kind)
    assert definition["spec"]["names"]["kind"] == kind
    assert definition["spec"]["scope"] == "Namespaced"
    (found,) = [v for v in definition["spec"]["versions"] if v["name"] == version]
    strict: dict[str, Any] = _strict(copy.deepcopy(found["schema"]["openAPIV3Schema"]))
    strict["properties"]["metadata"] = METADATA
    strict["required"] = sorted({*strict.get("required", []), "apiVersion", "kind"})
    return strict


def problems(obj: dict[str, Any]) -> list[str]:
    """Why the API server (or ``fission spec apply``) would refuse ``obj``; empty when valid."""
    kind = obj.get("kind")
    if kind in NOT_CRDS:
        version = "v1"
    else:
        if kind not in FILES:
            return [f"unknown kind {kind!r}"]
        group, _, version = str(obj.get("apiVersion", "")).partition("/")
        if group != crd(kind)["spec"]["group"]:
            return [f"apiVersion {obj.get('apiVersion')!r} is not of group fission.io"]
    validator = jsonschema.Draft202012Validator(schema(kind, version))
    return [
        f"{kind} {obj.get('metadata', {}).get('name', obj.get('name'))}: "
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
