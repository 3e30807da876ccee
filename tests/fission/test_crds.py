"""The CRD checker the export's tests rely on can fail: it refuses what the API server would."""

from __future__ import annotations

from tests.fission import crds

TRIGGER = {
    "apiVersion": "fission.io/v1",
    "kind": "HTTPTrigger",
    "metadata": {"name": "triage", "namespace": "apps"},
    "spec": {
        "functionref": {"type": "name", "name": "triage"},
        "relativeurl": "/ghapplets/triage",
        "methods": ["POST"],
        "createingress": False,
    },
}


def test_a_valid_object_passes() -> None:
    assert crds.problems(TRIGGER) == []


def test_an_unknown_field_a_missing_namespace_and_a_bad_enum_fail() -> None:
    unknown = {**TRIGGER, "spec": {**TRIGGER["spec"], "relativeURL": "/x"}}  # type: ignore[dict-item]
    assert any("relativeURL" in p for p in crds.problems(unknown))
    no_namespace = {**TRIGGER, "metadata": {"name": "triage"}}
    assert any("namespace" in p for p in crds.problems(no_namespace))
    bad_method = {**TRIGGER, "spec": {**TRIGGER["spec"], "methods": ["post"]}}  # type: ignore[dict-item]
    assert any("post" in p for p in crds.problems(bad_method))
    bad_name = {**TRIGGER, "metadata": {"name": "Tri_age", "namespace": "apps"}}
    assert crds.problems(bad_name)


def test_required_fields_and_other_kinds() -> None:
    package = {
        "apiVersion": "fission.io/v1",
        "kind": "Package",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {"environment": {"name": "python"}},  # the schema requires its namespace
    }
    assert any("namespace" in p for p in crds.problems(package))
    assert crds.problems({"kind": "ArchiveUploadSpec", "name": "a", "include": ["x/*"]}) == []
    assert crds.problems({"kind": "ArchiveUploadSpec", "name": "a", "includes": ["x/*"]})
    assert crds.problems({"apiVersion": "example.com/v1", "kind": "Function"})
