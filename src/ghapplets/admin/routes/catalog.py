"""``/applets``, ``/sources``, ``/blueprints``: what the project declares (never a secret: a
source shows its kind and settings' flags, an applet the names of the secrets it reads)."""

from __future__ import annotations

from ghapplets.admin import schemas as s
from ghapplets.admin.access import Access
from ghapplets.admin.endpoint import Call, Endpoint
from ghapplets.applets.model import AppletSpec
from ghapplets.blueprints.loader import Blueprint, pick_version
from ghapplets.exceptions import NotFound


def _applet(spec: AppletSpec) -> s.Applet:
    return s.Applet(
        name=spec.name,
        runtime=spec.runtime,
        description=spec.description,
        enabled=spec.enabled,
        on=[s.Subscription(type=sub.type, when=sub.when) for sub in spec.on],
        secrets=list(spec.secrets),
        connectors=list(spec.connectors),
        timeout=spec.timeout,
        concurrency=spec.concurrency,
        retry=s.RetryPolicy(
            max_attempts=spec.retry.max_attempts,
            initial_delay=spec.retry.initial_delay,
            max_delay=spec.retry.max_delay,
            factor=spec.retry.factor,
        ),
    )


async def list_applets(call: Call) -> s.AppletList:
    return s.AppletList(items=[_applet(spec) for spec in await call.ctx.specs()])


async def get_applet(call: Call) -> s.Applet:
    name = call.path["name"]
    for spec in await call.ctx.specs():
        if spec.name == name:
            return _applet(spec)
    raise NotFound(f"no applet {name!r}")


async def list_sources(call: Call) -> s.SourceList:
    items = [
        s.Source(
            name=name,
            kind=settings.kind,
            description=settings.description,
            path=f"/hooks/{name}",
            redact_payload=settings.redact_payload,
            replay_protection=settings.replay_protection,
        )
        for name, settings in sorted(call.ctx.loaded.sources.items())
    ]
    return s.SourceList(items=items)


def _blueprint(b: Blueprint, root: str) -> s.BlueprintSummary:
    tasks = [name for entry in b.definition.get("do") or [] for name in entry]
    file = None
    if b.path is not None:
        file = str(b.path.relative_to(root)) if b.path.is_relative_to(root) else b.path.name
    return s.BlueprintSummary(
        namespace=b.namespace,
        name=b.name,
        version=b.version,
        digest=b.digest,
        dsl=b.dsl,
        file=file,
        tasks=tasks,
        schedule=b.definition.get("schedule"),
    )


async def list_blueprints(call: Call) -> s.BlueprintList:
    root = str(call.ctx.config.root)
    return s.BlueprintList(items=[_blueprint(b, root) for b in await call.ctx.blueprints()])


async def get_blueprint(call: Call) -> s.BlueprintDetail:
    p = call.path
    try:
        found = pick_version(await call.ctx.blueprints(), p["namespace"], p["name"], p["version"])
    except LookupError:
        raise NotFound(f"no blueprint {p['namespace']}/{p['name']}@{p['version']}") from None
    summary = _blueprint(found, str(call.ctx.config.root))
    return s.BlueprintDetail(**summary.model_dump(), definition=found.definition)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/applets",
        Access.READ,
        list_applets,
        "The project's applets",
        s.AppletList,
        "catalog",
    ),
    Endpoint(
        "GET",
        "/applets/{name}",
        Access.READ,
        get_applet,
        "One applet",
        s.Applet,
        "catalog",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/sources",
        Access.READ,
        list_sources,
        "The configured sources (names and kinds, never secrets)",
        s.SourceList,
        "catalog",
    ),
    Endpoint(
        "GET",
        "/blueprints",
        Access.READ,
        list_blueprints,
        "The project's blueprints",
        s.BlueprintList,
        "catalog",
    ),
    Endpoint(
        "GET",
        "/blueprints/{namespace}/{name}/{version}",
        Access.READ,
        get_blueprint,
        "One blueprint with its definition (version: an exact one, or latest)",
        s.BlueprintDetail,
        "catalog",
        errors=(404,),
    ),
)
