"""The script that runs an exec applet in Fission's binary environment, as close to the exec
contract as that environment lets it.

Fission's binary environment (fission/environments ``binary/server.go``) runs the package's
file with ``/bin/sh``, the request's headers as ``HTTP_<NAME>`` variables (upper case, dashes
kept: ``HTTP_CE-TYPE``), ``PATH`` broken (a literal ``$PATH:`` in front), the body on stdin; it
answers ``200`` with stdout when the script exits 0, ``500`` with a short message otherwise,
always as text. :func:`wrapper` writes the script (POSIX ``sh``, the image's coreutils) that
turns that into the exec contract of :mod:`ghapplets.applets.exec_runtime`:

- stdin: the structured CloudEvent, rebuilt from the ``ce-*`` headers and the body (a body that
  is no JSON as ``data_base64``); for a Fission Workflow's step, a ``ghapplets.blueprint.call``
  event whose data is the step's input;
- the environment: ``PATH``, ``HOME``, ``LANG``, the manifest's ``env``, each declared secret as
  ``GHAPPLETS_SECRET_<NAME>`` (read from the mounted Kubernetes Secret), ``GHAPPLETS_JOB_ID``,
  ``GHAPPLETS_IDEMPOTENCY_KEY``, ``GHAPPLETS_ATTEMPT``, ``GHAPPLETS_DELIVERY_ID``,
  ``GHAPPLETS_EVENT_TYPE``, ``GHAPPLETS_APPLET``; the applet folder as the working directory;
- the applet's ``timeout`` (``timeout -s KILL``); exit ``75`` stays ``75``.

What cannot map (documented in docs/deploy.md): the answer is text, so the ``http`` runtime
gets the applet's JSON result as a string; every failure is a ``500``, which it retries (a
permanent exit status included, until ``retry.max_attempts``); an error envelope
(``{"ok": false, ...}``) on stdout becomes exit 1; nothing is redacted; stderr goes to the
function's log, not to the job; a secret's trailing newlines are lost (``$(cat ...)``).
"""

from __future__ import annotations

import math
import os

from ghapplets.applets.model import AppletSpec
from ghapplets.blueprints.effects import CALL_EVENT_TYPE
from ghapplets.secrets.names import secret_env_name

ENTRY_SCRIPT = "ghapplets_fission_entry.sh"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_TEMPLATE = r"""#!/bin/sh
# Runs the exec applet {name} in Fission's binary environment, with the exec contract of
# Ghapplets: written by `ghapplets export fission` (see docs/deploy.md, "Fission").
set -u
PATH={path}
export PATH
here=$(cd "$(dirname "$0")" && pwd)
secrets=${{GHAPPLETS_FISSION_SECRETS_DIR:-{secrets}}}
work=$(mktemp -d) || exit 75
trap 'rm -rf "$work"' EXIT

header() {{  # the request header $1 (upper case), from the variables Fission set
  tr '\000' '\n' < /proc/$$/environ | sed -n "s/^HTTP_$1=//p" | head -n 1
}}
json() {{  # $1 as a JSON string
  printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}}
secret() {{  # the value of the declared secret $1: the applet's own, else the global one
  for file in "$secrets/applets/{name}/$1" "$secrets/$1"; do
    if [ -f "$file" ]; then cat "$file"; return 0; fi
  done
  echo "ghapplets: secret '$1' not found in $secrets" >&2
  return 1
}}

cat > "$work/body"
ctype=$(header CONTENT-TYPE)
run=$(header X-FISSION-WORKFLOW-RUN)
if [ -z "$(header CE-TYPE)" ] && [ -n "$run" ]; then  # a step of a Fission Workflow
  branch=$(header X-FISSION-WORKFLOW-BRANCH)
  id=$({{ printf '%s/%s/%s/' "$run" "$branch" {name_q}; cat "$work/body"; }} |
    sha256sum | cut -c1-32)
  type={call_type}
  attributes=$(printf '"id":%s,"source":%s,"type":"%s","subject":%s,"specversion":"1.0"' \
    "$(json "$id")" "$(json "/fission/workflow-runs/$run")" "$type" "$(json {name_q})")
  key=$id
  attempt=$(header X-FISSION-WORKFLOW-ATTEMPT)
  delivery=$run
  ctype=application/json
else
  type=$(header CE-TYPE)
  id=$(header CE-ID)
  attributes=$(tr '\000' '\n' < /proc/$$/environ |
    sed -n 's/^HTTP_CE-\([A-Z0-9]*\)=\(.*\)$/\1 \2/p' |
    while read -r attribute value; do
      printf '%s:%s,' "$(json "$(printf '%s' "$attribute" | tr 'A-Z' 'a-z')")" "$(json "$value")"
    done)
  attributes=${{attributes%,}}
  key=$(header IDEMPOTENCY-KEY)
  attempt=$(header X-GHAPPLETS-ATTEMPT)
  delivery=$(header X-GHAPPLETS-DELIVERY-ID)
fi
if [ -z "$type" ]; then
  echo "ghapplets: not a CloudEvent (no ce-type header) nor a Fission Workflow step" >&2
  exit 1
fi
[ -n "$ctype" ] || ctype=application/json
{{
  printf '{{%s,"datacontenttype":%s' "$attributes" "$(json "$ctype")"
  case "$ctype" in
    *json*)
      printf ',"data":'
      if [ -s "$work/body" ]; then cat "$work/body"; else printf 'null'; fi
      ;;
    *) printf ',"data_base64":"'; base64 -w 0 < "$work/body"; printf '"' ;;
  esac
  printf '}}'
}} > "$work/event"
{secret_reads}
cd "$here" || exit 75
env -i PATH="$PATH" HOME=/tmp LANG=C.UTF-8 \
{variables}  GHAPPLETS_JOB_ID="${{key:-$id}}" GHAPPLETS_IDEMPOTENCY_KEY="${{key:-$id}}" \
  GHAPPLETS_ATTEMPT="${{attempt:-1}}" GHAPPLETS_DELIVERY_ID="${{delivery:-$id}}" \
  GHAPPLETS_EVENT_TYPE="$type" GHAPPLETS_APPLET={name_q} \
  timeout -s KILL {timeout} {command} < "$work/event" > "$work/out"
status=$?
if [ "$status" -ne 0 ]; then
  echo "ghapplets: applet {name} exited with status $status" >&2
  exit "$status"
fi
if tr -d ' \n\r\t' < "$work/out" | grep -q '^{{"ok":false'; then
  echo "ghapplets: applet {name} reported an error: $(head -c 2000 "$work/out")" >&2
  exit 1
fi
cat "$work/out"
"""


def quote(text: str) -> str:
    """``text`` as one word of ``sh``, in single quotes."""
    return "'" + text.replace("'", "'\\''") + "'"


def _program(spec: AppletSpec) -> str:
    """``command[0]`` as the script runs it from the applet folder, as the exec runtime
    resolves it: absolute as is, a path or a file of the folder relative to it, else PATH."""
    assert spec.command
    program = spec.command[0]
    folder = spec.folder
    local = "/" in program or (folder is not None and (folder / program).exists())
    if os.path.isabs(program) or not local or program.startswith(("./", "../")):
        return program
    return "./" + program


def program_on_path(spec: AppletSpec) -> str | None:
    """The program an exec applet looks up on PATH (it must be in the environment's image),
    or None when it is in the package or absolute."""
    program = _program(spec)
    return None if "/" in program else program


def wrapper(spec: AppletSpec, secrets_dir: str) -> str:
    """The script that runs the exec applet ``spec`` in Fission's binary environment; its
    declared secrets are read from ``secrets_dir`` (``GHAPPLETS_FISSION_SECRETS_DIR`` wins)."""
    assert spec.runtime == "exec" and spec.command
    command = " ".join(quote(arg) for arg in [_program(spec), *spec.command[1:]])
    reads = []
    variables = []
    for name, value in spec.env.items():
        variables.append(f"  {quote(f'{name}={value}')} \\\n")
    for i, name in enumerate(spec.secrets):
        reads.append(f"secret_{i}=$(secret {quote(name)}) || exit 1")
        variables.append(f'  {secret_env_name(name)}="$secret_{i}" \\\n')
    return _TEMPLATE.format(
        name=spec.name,
        name_q=quote(spec.name),
        path=quote(SAFE_PATH),
        secrets=secrets_dir,
        call_type=quote(CALL_EVENT_TYPE),
        secret_reads="\n".join(reads),
        variables="".join(variables),
        timeout=math.ceil(spec.timeout),
        command=command,
    )
