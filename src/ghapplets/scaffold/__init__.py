"""Project scaffolding for ``ghapplets init``: copies ``template/`` with the project's name
(``$project``) and the Ghapplets version that made it (``$version``, which the CI workflow's
install step pins)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from ghapplets import __version__

TEMPLATED = {".yaml", ".yml", ".py", ".md"}


def template_files() -> list[tuple[Path, bytes, bool]]:
    """(relative path, content, executable) of every template file."""
    root = resources.files("ghapplets.scaffold") / "template"
    out: list[tuple[Path, bytes, bool]] = []

    def walk(node: object, rel: Path) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                walk(child, rel / child.name)
            else:
                executable = child.name.endswith(".sh")
                out.append((rel / child.name, child.read_bytes(), executable))

    walk(root, Path())
    return sorted(out)


def scaffold(target: Path, project: str, *, force: bool = False) -> list[Path]:
    """Write the template into ``target``; refuse to overwrite files unless ``force``."""
    files = template_files()
    clashes = [rel for rel, _, _ in files if (target / rel).exists()]
    if clashes and not force:
        names = ", ".join(str(c) for c in clashes[:5])
        raise FileExistsError(f"{target} already has {names}; use --force to overwrite")
    written = []
    for rel, content, executable in files:
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix in TEMPLATED:
            text = Template(content.decode()).safe_substitute(project=project, version=__version__)
            content = text.encode()
        path.write_bytes(content)
        if executable:
            path.chmod(0o755)
        written.append(path)
    gitignore = target / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".ghapplets/\n__pycache__/\n")
    return written
