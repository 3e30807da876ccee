"""``ghapplets export``: write the project for another platform; ``export fission`` writes
Fission specs (see :mod:`ghapplets.fission.export`) and prints what it wrote and what not."""

from __future__ import annotations

from pathlib import Path

import typer

from ghapplets.applets.loader import discover
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import load_blueprints
from ghapplets.cli.project import (
    EXIT_CONFIG,
    EXIT_USAGE,
    ProjectOpt,
    console,
    fail,
    literal,
    load,
    print_problems,
)
from ghapplets.exceptions import ConfigError
from ghapplets.fission.export import (
    DEFAULT_ROUTER,
    MANIFESTS,
    SPECS,
    Environment,
    Export,
    Images,
    Options,
    plan,
)
from ghapplets.fission.names import is_label
from ghapplets.fission.writer import write_export

app = typer.Typer(help="Export the project to another platform.", no_args_is_help=True)
_IMAGES = Images()


def _check_out(out: Path, force: bool, applet_folders: list[Path]) -> Path:
    out = out.expanduser().absolute()
    if not out.parent.is_dir():
        fail(f"--out {out}: its parent folder {out.parent} does not exist", EXIT_USAGE)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is not a folder", EXIT_USAGE)
    if out.is_dir() and any(out.iterdir()) and not force:
        fail(
            f"--out {out} is not empty: choose another folder, or --force to replace its "
            f"{SPECS}/, packages/ and ghapplets/ sub-folders",
            EXIT_USAGE,
        )
    real = out.resolve()
    for folder in applet_folders:
        if real.is_relative_to(folder.resolve()):
            fail(f"--out {out} is inside the applet folder {folder}", EXIT_USAGE)
    return out


@app.command("fission")
def fission(
    out: Path = typer.Option(
        Path("fission"), "--out", "-o", help="Folder to write (created; its parent must exist)."
    ),
    namespace: str = typer.Option(
        "default", "--namespace", "-n", help="Kubernetes namespace of every object."
    ),
    router_url: str = typer.Option(
        DEFAULT_ROUTER, "--router-url", help="The Fission router as Ghapplets reaches it."
    ),
    exec_env: Environment = typer.Option(
        Environment.BINARY,
        "--exec-env",
        help="Fission environment of exec applets: binary (Fission's binary environment) or "
        "python (the adapter runs them with the exec runtime: the whole exec contract).",
    ),
    python_image: str = typer.Option(_IMAGES.python, "--python-image"),
    python_builder: str = typer.Option(_IMAGES.python_builder, "--python-builder-image"),
    binary_image: str = typer.Option(_IMAGES.binary, "--binary-image"),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty."),
    project: Path | None = ProjectOpt,
) -> None:
    """Write Fission specs for the project: an Environment per runtime in use, a Package,
    Function and internal HTTPTrigger per applet, a Workflow per blueprint that maps; and
    http-runtime manifests that send the applets' events to the Fission router."""
    if not is_label(namespace):
        fail(
            f"--namespace {namespace!r} is not a Kubernetes namespace (a DNS-1123 label)",
            EXIT_USAGE,
        )
    if not router_url.startswith(("http://", "https://")):
        fail(f"--router-url {router_url!r} must start with http:// or https://", EXIT_USAGE)
    loaded = load(project)
    try:
        specs = discover(loaded.config.applet_dirs(), connectors=loaded.config.connectors)
        blueprints = load_blueprints(loaded.config.blueprint_dirs(), project_catalog(specs))
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    folders = [spec.folder for spec in specs if spec.folder is not None]
    out = _check_out(out, force, folders)
    options = Options(
        namespace=namespace,
        router_url=router_url,
        images=Images(python_image, python_builder, binary_image),
        exec_environment=exec_env,
        project=loaded.config.project,
    )
    export = plan(specs, blueprints, options)
    try:
        write_export(export, out, replace=force)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    _summary(export, out)


def _summary(export: Export, out: Path) -> None:
    say = console.print
    objects = export.objects()
    say(
        f"[green]wrote[/] {len(objects)} object(s) in {len(export.specs)} file(s) to "
        f"{literal(out / SPECS)}: apply with fission spec apply --specdir {literal(out / SPECS)}",
        soft_wrap=True,
    )
    for applet, function in sorted(export.functions.items()):
        manifest = export.manifests[applet]
        say(
            f"  function {literal(function)} (applet {literal(applet)}): "
            f"{literal(manifest['url'])}",
            soft_wrap=True,
        )
    for blueprint, workflow in export.workflows.items():
        say(f"  workflow {literal(workflow)} (blueprint {literal(blueprint)})", soft_wrap=True)
    if export.refusals:
        say(
            f"[yellow]{len(export.refusals)} blueprint(s) not exported[/] "
            "(they keep running in Ghapplets):"
        )
        for refusal in export.refusals:
            say(f"  {literal(refusal)}", soft_wrap=True)
    manifests = out / MANIFESTS
    say(
        f"applet manifests in {literal(manifests)}: use that folder as the project's applets "
        "(applets: in ghapplets.yaml); retries, dead letters and replay stay in Ghapplets",
        soft_wrap=True,
    )
    for note in export.notes:
        say(f"[yellow]note:[/] {literal(note)}", soft_wrap=True)
