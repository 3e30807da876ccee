"""Loading blueprint files and folders of them."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from ghapplets.blueprints.checks import Catalog
from ghapplets.blueprints.loader import (
    blueprint_paths,
    load_blueprint,
    load_blueprints,
    pick_version,
)
from ghapplets.exceptions import BlueprintInvalid


def blueprint(name: str, version: str = "1.0.0", body: str = "do:\n  - a: {set: {x: 1}}\n") -> str:
    head = f"document:\n  dsl: '1.0.3'\n  namespace: test\n  name: {name}\n  version: '{version}'\n"
    return head + textwrap.dedent(body)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_json_file_loads(tmp_path: Path) -> None:
    data = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "j", "version": "1.0.0"},
        "do": [{"a": {"set": {"on": "yes"}}}],
    }
    path = write(tmp_path / "j.json", json.dumps(data, indent=1))
    loaded = load_blueprint(path)
    assert loaded.definition == data
    assert loaded.path == path
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.name = "other"  # type: ignore[misc]
    again = load_blueprint(path)
    assert again == loaded
    assert {loaded, again} == {loaded}  # hashable, by name, version and digest


def test_a_json_file_gets_located_problems(tmp_path: Path) -> None:
    text = '{\n "document": {"dsl": "1.0.3", "namespace": "test", "name": "j", "version": "1"},\n'
    text += ' "do": [{"a": {"set": {}}}]\n}\n'
    path = write(tmp_path / "j.json", text)
    with pytest.raises(BlueprintInvalid) as exc:
        load_blueprint(path)
    assert [str(p) for p in exc.value.problems] == [
        f"{path}:2:65: document.version: expected a semantic version like 1.0.0 (got '1')",
        f"{path}:3:16: do.0.a.set: set needs at least one value (or a runtime expression)",
    ]


def test_folders_are_read_in_order_skipping_hidden_files_and_folders(tmp_path: Path) -> None:
    write(tmp_path / "a" / "one.yaml", blueprint("one"))
    write(tmp_path / "a" / "sub" / "two.yml", blueprint("two"))
    write(tmp_path / "a" / ".hidden" / "broken.yaml", "not: [a blueprint")
    write(tmp_path / "a" / ".draft.yaml", "not: [a blueprint")
    write(tmp_path / "a" / "__pycache__" / "x.yaml", "not: [a blueprint")
    write(tmp_path / "a" / "notes.txt", "not a blueprint")
    write(tmp_path / "b" / "three.json", json.dumps({
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "three", "version": "1.0.0"},
        "do": [],
    }))  # fmt: skip
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "a"]  # a folder twice: read once
    paths, problems = blueprint_paths(folders)
    assert problems == []
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "a/one.yaml",
        "a/sub/two.yml",
        "b/three.json",
    ]
    loaded = load_blueprints(folders)
    assert [b.name for b in loaded] == ["one", "two", "three"]


def test_the_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", blueprint("a", body="do:\n  - a: {set: {x: 1}, then: b}\n"))
    second = write(tmp_path / "b.yaml", "document: [")
    write(tmp_path / "c.yaml", blueprint("c"))
    with pytest.raises(BlueprintInvalid) as exc:
        load_blueprints([tmp_path, tmp_path / "missing"])
    assert [str(p) for p in exc.value.problems] == [
        f"{first}:7:28: do.0.a.then: then: no task named 'b' in this list (the tasks of this "
        "list are: a; or continue, exit, end)",
        f"{second}:1:12: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)",
        f"{tmp_path / 'missing'}:1:1: blueprint folder not found",
    ]  # by file, then line


def test_two_blueprints_cannot_share_namespace_name_and_version(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", blueprint("same"))
    second = write(tmp_path / "b.yaml", blueprint("same"))
    write(tmp_path / "c.yaml", blueprint("same", version="2.0.0"))
    with pytest.raises(BlueprintInvalid) as exc:
        load_blueprints([tmp_path])
    assert [str(p) for p in exc.value.problems] == [
        f"{second}:4:3: document.name: blueprint test/same version 1.0.0 is also defined in {first}"
    ]


def test_a_subflow_may_be_one_of_the_blueprints_loaded(tmp_path: Path) -> None:
    calls = "do:\n  - sub: {run: {workflow: {namespace: test, name: child, version: '1.0.0'}}}\n"
    parent = write(tmp_path / "parent.yaml", blueprint("parent", body=calls))
    write(tmp_path / "child.yaml", blueprint("child"))
    assert len(load_blueprints([tmp_path], Catalog(blueprints=frozenset()))) == 2
    (tmp_path / "child.yaml").unlink()
    with pytest.raises(BlueprintInvalid) as exc:
        load_blueprints([tmp_path], Catalog(blueprints=frozenset()))
    assert [str(p) for p in exc.value.problems] == [
        f"{parent}:7:17: do.0.sub.run.workflow: run.workflow: test/child: no such blueprint"
    ]
    assert len(load_blueprints([tmp_path])) == 1  # the platform does not say: not checked
    known = Catalog(blueprints=frozenset({("test", "child", "1.0.0")}))
    assert len(load_blueprints([tmp_path], known)) == 1


@dataclasses.dataclass(frozen=True)
class Named:
    namespace: str
    name: str
    version: str


def test_latest_is_the_highest_version_by_semantic_precedence() -> None:
    found = [Named("test", "child", v) for v in ("0.9.0", "0.10.0", "0.10.1-rc.1", "0.2.11")] + [
        Named("test", "other", "9.0.0"),
        Named("else", "child", "9.0.0"),
    ]
    assert pick_version(found, "test", "child", "latest").version == "0.10.1-rc.1"
    released = [f for f in found if f.version != "0.10.1-rc.1"]
    assert pick_version(released, "test", "child", "latest").version == "0.10.0"
    assert pick_version(found, "test", "child", "0.9.0") == Named("test", "child", "0.9.0")
    with_release = [*found, Named("test", "child", "0.10.1")]
    assert pick_version(with_release, "test", "child", "latest").version == "0.10.1"
    with pytest.raises(LookupError, match=r"^test/child@1.0.0$"):
        pick_version(found, "test", "child", "1.0.0")
    with pytest.raises(LookupError, match=r"^test/none@latest$"):
        pick_version(found, "test", "none", "latest")
