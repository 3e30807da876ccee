"""Writing an :class:`~ghapplets.fission.export.Export` to a folder.

The folder gets ``specs/`` (for ``fission spec apply --specdir <folder>/specs``: the archives'
globs are relative to its parent, the folder itself), ``packages/<function>/`` (each applet's
folder, without hidden files, ``__pycache__`` and ``node_modules``, plus the generated files;
a Python package's ``requirements.txt`` gets the Ghapplets line added) and
``ghapplets/applets/<applet>/applet.yaml`` (the manifests that replace the project's applets).
With ``replace``, those three sub-folders are emptied first, so an applet that is gone leaves
no package behind; nothing else in the folder is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ghapplets.fission.export import MANIFESTS, PACKAGES, SPECS, Export, Package

_SKIP = shutil.ignore_patterns(".*", "__pycache__", "node_modules")


def _dump(documents: tuple[dict[str, object], ...] | list[dict[str, object]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=100)


def _requirements(path: Path, line: str) -> None:
    name = line.split("=")[0].strip().lower()
    lines = path.read_text().splitlines() if path.exists() else []
    mentioned = any(
        existing.strip().lower().startswith(name)
        and existing.strip()[len(name) : len(name) + 1] in ("", "=", "<", ">", "~", "!", "[", " ")
        for existing in lines
    )
    if not mentioned:
        lines.append(line)
        path.write_text("\n".join(lines) + "\n")


def _package(package: Package, out: Path) -> None:
    folder = out / package.folder
    shutil.copytree(package.source, folder, ignore=_SKIP, symlinks=False)
    for generated in package.files:
        path = folder / generated.path
        path.write_text(generated.text)
        path.chmod(0o755 if generated.executable else 0o644)
    if package.requirement is not None:
        _requirements(folder / "requirements.txt", package.requirement)


def write_export(export: Export, out: Path, *, replace: bool = False) -> list[Path]:
    """Write ``export`` into ``out`` (created if need be); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    if replace:
        for sub in (SPECS, PACKAGES, MANIFESTS.split("/")[0]):
            if (out / sub).is_dir() and not (out / sub).is_symlink():
                shutil.rmtree(out / sub)
    written: list[Path] = []
    (out / SPECS).mkdir()
    for spec in export.specs:
        path = out / SPECS / spec.name
        path.write_text(_dump(spec.documents))
        written.append(path)
    for package in export.packages:
        _package(package, out)
        written.append(out / package.folder)
    for name, manifest in export.manifests.items():
        path = out / MANIFESTS / name / "applet.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False))
        written.append(path)
    for name, source in export.kept.items():
        path = out / MANIFESTS / name / "applet.yaml"
        path.parent.mkdir(parents=True)
        shutil.copyfile(source, path)
        written.append(path)
    return written
