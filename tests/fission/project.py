"""The project the export's tests export: a Python applet (with a secret), an exec applet
(with a secret, env and a name that is no Kubernetes name), an http applet, a blueprint that
maps onto a Fission Workflow and one that does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ghapplets.applets.loader import discover
from ghapplets.blueprints.checks import project_catalog
from ghapplets.blueprints.loader import load_blueprints
from ghapplets.fission.export import Export, Options, plan
from ghapplets.fission.writer import write_export
from tests.conftest import ProjectBuilder, write
from tests.fission.conftest import HANDLER

NAMESPACE = "apps"
EXEC_SCRIPT = """\
#!/bin/sh
# echoes what the exec contract gave it
event=$(cat)
if [ "$(printf '%s' "$event" | grep -c '"busy"')" -gt 0 ]; then exit 75; fi
if [ "$(printf '%s' "$event" | grep -c '"broken"')" -gt 0 ]; then
  echo '{"ok": false, "error": {}}'; exit 0
fi
printf '{"event": %s, "type": "%s", "key": "%s", "attempt": "%s", "delivery": "%s", ' \\
  "$event" "$GHAPPLETS_EVENT_TYPE" "$GHAPPLETS_IDEMPOTENCY_KEY" "$GHAPPLETS_ATTEMPT" \\
  "$GHAPPLETS_DELIVERY_ID"
printf '"applet": "%s", "token": "%s", "channel": "%s", "cwd": "%s"}\\n' \\
  "$GHAPPLETS_APPLET" "$GHAPPLETS_SECRET_SLACK_TOKEN" "$CHANNEL" "$(pwd)"
"""
FLOW = """\
document: {dsl: '1.0.0', namespace: demo, name: issue-flow, version: '1.0.0'}
do:
  - classify: {call: triage}
  - route:
      switch:
        - busy: {when: .title == "urgent", then: tell}
        - calm: {then: end}
  - tell: {call: notify_v2}
"""
REFUSED = """\
document: {dsl: '1.0.0', namespace: demo, name: deploy-flow, version: '1.0.0'}
do:
  - classify: {call: triage}
  - deploy: {call: deploy-fn}
"""


def build(project: ProjectBuilder) -> Path:
    project.python_applet("triage", HANDLER, "secrets: [jira-token]\ntimeout: 5\n")
    project.exec_applet(
        "notify_v2",
        EXEC_SCRIPT,
        "on: [com.github.issues.*]\nsecrets: [slack-token]\nenv: {CHANNEL: deploys}\ntimeout: 7\n",
    )
    write(
        project.root / "applets" / "deploy-fn" / "applet.yaml",
        "name: deploy-fn\nruntime: http\nurl: https://deploy.example.com/\non: [com.github.push]\n",
    )
    project.blueprint("issue-flow", FLOW)
    project.blueprint("deploy-flow", REFUSED)
    return project.build()


def export_project(root: Path, out: Path, **options: Any) -> Export:
    specs = discover([root / "applets"])
    blueprints = load_blueprints([root / "blueprints"], project_catalog(specs))
    export = plan(specs, blueprints, Options(namespace=NAMESPACE, project="test", **options))
    write_export(export, out)
    return export
