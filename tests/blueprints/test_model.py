"""The DSL models: what a workflow may hold, and the located message for what it may not."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import orjson
import pytest

from ghapplets.blueprints.loader import parse_blueprint
from ghapplets.blueprints.model import TaskKind, Workflow, task_kind
from ghapplets.blueprints.model_base import file_path, is_expression
from ghapplets.blueprints.model_tasks import task_kinds
from ghapplets.blueprints.source import parse_source
from ghapplets.exceptions import BlueprintInvalid

HEAD = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""  # five lines: the body starts at line 6


def load(body: str) -> Any:
    return parse_blueprint(HEAD + textwrap.dedent(body), "bp.yaml")


def problems(body: str, head: str = HEAD) -> list[str]:
    with pytest.raises(BlueprintInvalid) as exc:
        parse_blueprint(head + textwrap.dedent(body), "bp.yaml")
    return [str(p) for p in exc.value.problems]


def model(body: str) -> Workflow:
    """The model alone (no semantic checks): for what the checks refuse later."""
    data, _ = parse_source(HEAD + textwrap.dedent(body), "bp.yaml")
    return Workflow.model_validate(data)


EVERY_TASK = """\
input:
  schema:
    document: {type: object, required: [repo]}
  from: '${ {repo: .repo} }'
use:
  authentications:
    github: {bearer: {token: '${ $secrets.token }'}}
    vault: {oauth2: {authority: 'https://auth.example.com', grant: client_credentials,
                     client: {id: me, secret: s, authentication: client_secret_basic}}}
    fromSecret: {basic: {use: token}}
  errors:
    notFound: {type: 'https://example.com/errors/not-found', status: 404}
  functions:
    getIssue:
      call: http
      with: {method: get, endpoint: 'https://example.com/issues/{id}'}
  retries:
    twice: {delay: PT1S, backoff: {linear: {}}, limit: {attempt: {count: 2}}}
  secrets: [token]
  timeouts:
    short: {after: {seconds: 10}}
timeout: short
schedule:
  cron: '0 * * * *'
evaluate: {language: jq, mode: strict}
output:
  as: .result
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: {uri: 'https://api.example.com/{repo}', authentication: {use: github}}
        headers: {accept: application/json}
        query: {page: 1, per_page: [1, 2]}
        output: response
        redirect: true
      timeout: {after: PT30S}
      export: {as: '$context + {fetched: .}'}
  - spec:
      call: openapi
      with:
        document: {endpoint: 'https://api.example.com/openapi.json'}
        operationId: getRepo
        parameters: {repo: '${ .repo }'}
        authentication: {use: vault}
  - issue:
      call: getIssue
      with: {id: 1}
  - action:
      call: jira.create_issue
      with: {summary: x}
  - group:
      do:
        - inner: {set: {x: 1}}
  - announce:
      emit:
        event:
          with: {source: 'https://example.com', type: com.example.done, data: '${ . }'}
  - each:
      for: {each: repo, in: .repos, at: i}
      while: $i < 10
      do:
        - touch: {set: {name: '${ $repo.name }'}}
  - race:
      fork:
        compete: true
        branches:
          - left: {wait: {seconds: 1}}
          - right: {wait: PT2S}
  - hear:
      listen:
        to:
          any:
            - with: {type: com.example.ping}
              correlate: {repo: {from: .repo, expect: '${ .repo }'}}
          until: {one: {with: {type: com.example.stop}}}
        read: envelope
      foreach:
        item: ping
        do:
          - echo: {set: {got: '${ $ping }'}}
  - both:
      listen: {to: {all: [{with: {type: a}}, {with: {type: b}}]}}
  - one:
      listen: {to: {one: {with: {type: a, source: 'https://example.com'}}}}
  - upTo:
      listen: {to: {any: [], until: (. | length) > 3}}
  - fail:
      if: .broken
      raise: {error: notFound}
  - failInline:
      if: .broken
      raise:
        error: {type: 'https://example.com/e', status: 500, instance: /do/0, title: T, detail: D}
  - shell:
      run:
        shell: {command: ls, arguments: [-l], environment: {A: b}, stdin: '${ . }'}
        return: all
  - script:
      run:
        script: {language: python, code: 'print(1)', arguments: [x]}
        await: false
  - sub:
      run:
        workflow: {namespace: test, name: other, version: '1.0.0', input: [1, 2]}
  - setExpr:
      set: '${ . + {a: 1} }'
  - route:
      switch:
        - big: {when: .size > 10, then: shell}
        - other: {then: continue}
  - guarded:
      try:
        - risky: {call: getIssue, with: {id: 2}}
      catch:
        errors: {with: {status: 404, detail: gone}}
        as: oops
        when: $oops.status == 404
        exceptWhen: 'false'
        retry: twice
        do:
          - note: {set: {error: '${ $oops }'}}
      then: end
  - guardedInline:
      try:
        - risky: {call: getIssue}
      catch:
        retry:
          when: 'true'
          delay: {milliseconds: 500}
          backoff: {exponential: {}}
          limit: {attempt: {count: 3, duration: PT1M}, duration: PT5M}
          jitter: {from: {seconds: 1}, to: PT3S}
  - pause:
      wait: ${ "PT" + (.seconds | tostring) + "S" }
      metadata: {owner: me}
"""


def test_a_workflow_with_every_task_kind_loads() -> None:
    blueprint = load(EVERY_TASK)
    assert (blueprint.namespace, blueprint.name, blueprint.version) == ("test", "sample", "0.1.0")
    assert blueprint.dsl == "1.0.3"
    assert blueprint.path is None
    assert blueprint.key == ("test", "sample", "0.1.0")
    data, _ = parse_source(HEAD + EVERY_TASK, "x")
    assert blueprint.definition == data  # exactly as read
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    assert blueprint.digest == hashlib.sha256(canonical).hexdigest()
    kinds = {task_kind(next(iter(item.values()))) for item in data["do"]}
    assert kinds == set(TaskKind)


def test_the_digest_ignores_key_order_and_layout() -> None:
    a = parse_blueprint(
        HEAD + "do:\n  - a: {set: {x: 1, y: 2}}\n", "a.yaml"
    )  # flow style, x before y
    b = parse_blueprint(
        '{"do": [{"a": {"set": {"y": 2, "x": 1}}}], "document": {"version": "0.1.0", '
        '"name": "sample", "namespace": "test", "dsl": "1.0.3"}}',
        "b.json",
    )
    assert a.digest == b.digest
    assert a.definition == b.definition
    c = parse_blueprint(HEAD + "do:\n  - a: {set: {x: 1, y: 3}}\n", "c.yaml")
    assert c.digest != a.digest


def test_features_refused_later_are_still_valid_models() -> None:
    workflow = model(
        """\
        use:
          extensions:
            - log: {extend: all, before: [{note: {set: {a: 1}}}]}
          catalogs:
            global: {endpoint: 'https://github.com/serverlessworkflow/catalog'}
        do:
          - g:
              call: grpc
              with:
                proto: {endpoint: 'file://app/greet.proto'}
                service: {name: Greeter, host: localhost, port: 5011}
                method: SayHello
          - a:
              call: asyncapi
              with:
                document: {endpoint: 'https://example.com/asyncapi.json'}
                channel: /notifications
                subscription:
                  consume: {amount: 5, for: PT1M}
                  foreach: {item: m, do: [{x: {set: {m: '${ $m }'}}}]}
          - agent:
              call: a2a
              with: {method: message/send, server: 'https://agent.example.com'}
          - m:
              call: mcp
              with:
                method: tools/list
                transport: {http: {endpoint: 'https://mcp.example.com'}}
                client: {name: c, version: '1'}
          - c:
              run:
                container:
                  image: alpine
                  lifetime: {cleanup: eventually, after: PT1H}
                  pullPolicy: always
        """
    )
    assert workflow.use is not None and workflow.use.catalogs is not None
    assert [next(iter(item)) for item in workflow.do] == ["g", "a", "agent", "m", "c"]


def test_a_document_is_required() -> None:
    assert problems("do: []\n", head="") == [
        "bp.yaml:1:1: document: missing required property 'document'"
    ]


def test_an_empty_file_is_refused() -> None:
    assert problems("# nothing\n", head="") == [
        "bp.yaml:1:1: the file is empty: a blueprint needs document and do"
    ]


def test_a_file_that_is_not_a_mapping_is_refused() -> None:
    assert problems("- a\n- b\n", head="") == ["bp.yaml:1:1: expected a mapping, got a list"]


def test_document_fields_are_checked() -> None:
    head = "document:\n  dsl: 1.0\n  namespace: My_Space\n  name: ok\n  version: v1\n"
    assert problems("do: []\n", head=head) == [
        "bp.yaml:2:3: document.dsl: expected a string, got a number (1.0): quote it",
        "bp.yaml:3:3: document.namespace: expected 1 to 63 letters, digits or '-', starting and "
        "ending with a letter or a digit (got 'My_Space')",
        "bp.yaml:5:3: document.version: expected a semantic version like 1.0.0 (got 'v1')",
    ]


def test_unknown_properties_are_refused_with_a_suggestion() -> None:
    assert problems(
        """\
        timout: PT1S
        do:
          - get:
              call: http
              with:
                methd: get
                endpoint: https://example.com
        """
    ) == [
        "bp.yaml:6:1: timout: unknown property 'timout' (did you mean 'timeout'?)",
        "bp.yaml:10:7: do.0.get.with.method: missing required property 'method'",
        "bp.yaml:11:9: do.0.get.with.methd: unknown property 'methd' (did you mean 'method'?)",
    ]


def test_wrong_types_are_refused() -> None:
    assert problems(
        """\
        do:
          - fail:
              raise:
                error: {type: 'https://example.com/e', status: '500'}
          - get:
              call: http
              with: {method: get, endpoint: https://example.com, redirect: 'yes', output: body}
        """
    ) == [
        "bp.yaml:9:48: do.0.fail.raise.error.status: expected an integer, got a string ('500')",
        "bp.yaml:12:58: do.1.get.with.redirect: expected true or false, got a string ('yes')",
        "bp.yaml:12:75: do.1.get.with.output: must be 'raw', 'content' or 'response', not a "
        "string ('body')",
    ]


def test_a_task_entry_is_a_one_key_map() -> None:
    assert problems(
        """\
        do:
          - getPet:
            call: http
          - 42
        """
    ) == [
        "bp.yaml:7:5: do.0: expected a task: a one-key map like - taskName: {...}, not 2 keys "
        "(getPet, call); is the definition indented under its name?",
        "bp.yaml:9:5: do.1: expected a task: a one-key map like - taskName: {...}",
    ]


def test_a_task_has_exactly_one_kind() -> None:
    assert problems(
        """\
        do:
          - a:
              cal: http
          - b:
              then: end
          - c:
              set: {x: 1}
              wait: PT1S
          - d: null
        """
    ) == [
        "bp.yaml:7:5: do.0.a: not a task: a task needs one of call, do, emit, for, fork, listen, "
        "raise, run, set, switch, try, wait (did you mean 'call' instead of 'cal'?)",
        "bp.yaml:9:5: do.1.b: not a task: a task needs one of call, do, emit, for, fork, listen, "
        "raise, run, set, switch, try, wait",
        "bp.yaml:11:5: do.2.c: a task has one kind, this one has set and wait: split it in two "
        "tasks",
        "bp.yaml:14:5: do.3.d: not a task: a task needs one of call, do, emit, for, fork, listen, "
        "raise, run, set, switch, try, wait",
    ]


def test_a_for_task_keeps_its_do() -> None:
    assert task_kinds({"for": {}, "do": []}) == [TaskKind.FOR]
    assert task_kinds({"do": [], "set": {}}) == [TaskKind.DO, TaskKind.SET]
    assert task_kind({"do": [], "set": {}}) is None
    assert task_kind({"then": "end"}) is None


def test_explicit_nulls_are_refused_except_for_any_values() -> None:
    assert problems(
        """\
        do:
          - a:
              set: {x: 1}
              then:
          - b:
              call: http
              with: {method: post, endpoint: https://example.com, body: null}
          - c:
              emit: {event: {with: {source: https://example.com, type: t, data: null}}}
        """
    ) == ["bp.yaml:9:7: do.0.a.then: expected a value, not null (leave the key out)"]


# (the task, line 8 (+1 for a second line), where the problem is and what it says)
SHAPES = [
    ("wait: 30s", "8:7: do.0.t.wait: expected an ISO 8601 duration like PT30S, a runtime "
     "expression, or a mapping like {seconds: 30} (got '30s')"),
    ("wait: {secondz: 3}", "8:14: do.0.t.wait.secondz: unknown property 'secondz' "
     "(did you mean 'seconds'?)"),
    ("wait: {}", "8:7: do.0.t.wait: a duration needs days, hours, minutes, seconds or "
     "milliseconds"),
    ("wait: 30", "8:7: do.0.t.wait: expected a duration: an ISO 8601 string like PT30S, a "
     "runtime expression, or a mapping like {seconds: 30}"),
    ("wait: {seconds: 1.5}", "8:14: do.0.t.wait.seconds: expected an integer, got a number "
     "(1.5)"),
    ("set: {}", "8:7: do.0.t.set: set needs at least one value (or a runtime expression)"),
    ("set: [1]", "8:7: do.0.t.set: expected the data to set (a mapping) or a runtime "
     "expression"),
    ("switch: []", "8:7: do.0.t.switch: a switch needs at least one case"),
    ("switch: [{a: {when: .x}}]", "8:17: do.0.t.switch.0.a.then: missing required property "
     "'then'"),
    ("switch: [{a: {then: end}, b: {then: end}}]", "8:16: do.0.t.switch.0: expected a switch "
     "case: a one-key map like - caseName: {when: ..., then: ...}, not 2 keys (a, b); is the "
     "definition indented under its name?"),
    ("run: {await: true}", "8:7: do.0.t.run: set exactly one of container, script, shell, "
     "workflow"),
    ("run: {shell: {command: ls}, workflow: {namespace: a, name: b, version: '1'}}",
     "8:7: do.0.t.run: shell and workflow cannot be combined: set exactly one of container, "
     "script, shell, workflow"),
    ("run: {script: {language: js, code: x, source: {endpoint: https://x.com/a.js}}}",
     "8:13: do.0.t.run.script: code and source cannot be combined: set exactly one of code, "
     "source"),
    ("run: {shell: {command: ls}, return: everything}", "8:35: do.0.t.run.return: must be "
     "'stdout', 'stderr', 'code', 'all' or 'none', not a string ('everything')"),
    ("run: {container: {image: a, lifetime: {cleanup: eventually}}}",
     "8:35: do.0.t.run.container.lifetime: cleanup: eventually needs 'after'"),
    ("run: {container: {image: a, lifetime: {cleanup: always, after: PT1S}}}",
     "8:35: do.0.t.run.container.lifetime: 'after' only applies to cleanup: eventually"),
    ("listen: {to: {one: {with: {}}}}", "8:27: do.0.t.listen.to.one.with: an event filter "
     "needs at least one attribute (type, source, ...)"),
    ("listen: {to: {one: {with: {type: a}}, any: []}}", "8:16: do.0.t.listen.to: any and one "
     "cannot be combined: set exactly one of all, any, one"),
    ("listen: {to: {all: [], until: 'true'}}", "8:16: do.0.t.listen.to: 'until' only applies "
     "to 'any'"),
    ("listen: {to: {any: [], until: {any: [], until: x}}}",
     "8:47: do.0.t.listen.to.until.until: property 'until' is not allowed here"),
    ("listen: {to: {one: {with: {time: yesterday}}}}", "8:34: do.0.t.listen.to.one.with.time: "
     "expected an RFC 3339 date-time like 2024-07-26T16:59:57Z, or a runtime expression"),
    ("emit: {event: {with: {type: t}}}", "8:22: do.0.t.emit.event.with.source: missing "
     "required property 'source'"),
    ("raise: {error: {type: not a uri, status: 500}}", "8:23: do.0.t.raise.error.type: "
     "expected a URI with a scheme, like https://host/path (got 'not a uri')"),
    ("raise: {error: {type: 'https://x.com/e', status: 1, instance: no-slash}}",
     "8:59: do.0.t.raise.error.instance: expected a JSON pointer like /do/0/task, or a runtime "
     "expression"),
    ("call: http\n      with: {method: get, endpoint: 'https://x.com/{a'}",
     "9:27: do.0.t.with.endpoint: unbalanced or nested braces in the URI template "
     "'https://x.com/{a'"),
    ("call: http\n      with: {method: get, endpoint: example.com}",
     "9:27: do.0.t.with.endpoint: expected a URI with a scheme, like https://host/path (got "
     "'example.com')"),
    ("call: http\n      with: {method: get, endpoint: 'https://x.com', headers: {n: 1}}",
     "9:64: do.0.t.with.headers.n: expected a string, got a number (1): quote it"),
    ("call: openapi\n      with: {document: 'https://x.com/o.json', operationId: a}",
     "9:14: do.0.t.with.document: expected a mapping, got a string ('https://x.com/o.json')"),
    ("call: a2a\n      with: {method: message/send}", "9:7: do.0.t.with: set agentCard or "
     "server"),
    ("call: asyncapi\n      with: {document: {endpoint: 'https://x.com/a'}, operation: o, "
     "channel: c, message: {}}", "9:7: do.0.t.with: operation and channel cannot be "
     "combined: set exactly one of operation, channel"),
    ("call: mcp\n      with: {method: tools/list, transport: {}}",
     "9:34: do.0.t.with.transport: set exactly one of http, stdio"),
    ("call: grpc\n      with: {proto: {endpoint: 'file://a.proto'}, method: m, service: "
     "{name: s, host: 'bad host'}}", "9:81: do.0.t.with.service.host: expected a host name "
     "(got 'bad host')"),
    ("for: {each: x}\n      do: []", "8:7: do.0.t.for.in: missing required property 'in'"),
    ("fork: {compete: true}", "8:7: do.0.t.fork.branches: missing required property "
     "'branches'"),
    ("try: []", "7:5: do.0.t.catch: missing required property 'catch'"),
    ("try: []\n      catch: {errors: {with: {}}}", "9:24: do.0.t.catch.errors.with: an "
     "error filter needs at least one of type, status, ..."),
    ("try: []\n      catch: {retry: {backoff: {}}}", "9:23: do.0.t.catch.retry.backoff: set "
     "exactly one of constant, exponential, linear"),
    ("try: []\n      catch: {retry: {jitter: {from: PT1S}}}",
     "9:23: do.0.t.catch.retry.jitter.to: missing required property 'to'"),
    ("set: {a: 1}\n      input: {schema: {format: json}}", "9:15: do.0.t.input.schema: set "
     "exactly one of document, resource"),
    ("set: {a: 1}\n      output: {as: 5}", "9:16: do.0.t.output.as: expected a runtime "
     "expression (a string) or a mapping"),
    ("set: {a: 1}\n      timeout: 5", "9:7: do.0.t.timeout: expected a timeout ({after: "
     "duration}) or the name of one in use.timeouts"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "expected"), SHAPES)
def test_task_shapes_are_checked(task: str, expected: str) -> None:
    assert problems(f"do:\n  - t:\n      {task}\n") == [f"bp.yaml:{expected}"]


def test_authentication_shapes_are_checked() -> None:
    assert problems(
        """\
        use:
          authentications:
            a: {use: b}
            both: {basic: {username: u, password: p}, bearer: {token: t}}
            noClient: {oauth2: {authority: 'https://auth.x.com', grant: client_credentials}}
            jwt:
              oauth2:
                authority: 'https://auth.x.com'
                grant: client_credentials
                client: {id: me, authentication: private_key_jwt}
            badGrant: {oauth2: {authority: 'https://a.x.com', grant: implicit, client: {id: i}}}
            token: {bearer: 'abc'}
        do: []
        """
    ) == [
        "bp.yaml:8:5: use.authentications.a: an authentication defined in use.authentications "
        "cannot 'use' another one",
        "bp.yaml:9:5: use.authentications.both: basic and bearer cannot be combined: set exactly "
        "one of basic, bearer, certificate, digest, oauth2, oidc",
        "bp.yaml:10:16: use.authentications.noClient.oauth2: client.id is required unless "
        "client.authentication is none (it is client_secret_post)",
        "bp.yaml:12:7: use.authentications.jwt.oauth2: client.assertion is required by "
        "private_key_jwt",
        "bp.yaml:16:55: use.authentications.badGrant.oauth2.grant: must be 'authorization_code', "
        "'client_credentials', 'password', 'refresh_token' or "
        "'urn:ietf:params:oauth:grant-type:token-exchange', not a string ('implicit')",
        "bp.yaml:17:13: use.authentications.token.bearer: expected a mapping",
    ]


def test_schedule_needs_one_trigger_and_evaluate_a_known_mode() -> None:
    assert problems("do: []\nschedule: {}\nevaluate: {mode: lazy}\n") == [
        "bp.yaml:7:1: schedule: set one of every, cron, after or on",
        "bp.yaml:8:12: evaluate.mode: must be 'strict' or 'loose', not a string ('lazy')",
    ]


def test_use_sections_are_checked() -> None:
    assert problems(
        """\
        use:
          secrets: token
          extensions:
            - a: {extend: call}
              b: {extend: call}
            - c: {extend: everything}
          functions:
            f: {then: end}
        do: []
        """
    ) == [
        "bp.yaml:7:3: use.secrets: expected a list, got a string ('token')",
        "bp.yaml:9:7: use.extensions.0: expected an extension: a one-key map like - name: "
        "{extend: ...}, not 2 keys (a, b); is the definition indented under its name?",
        "bp.yaml:11:11: use.extensions.1.c.extend: must be 'call', 'composite', 'emit', "
        "'extension', 'for', 'listen', 'raise', 'run', 'set', 'switch', 'try', 'wait' or 'all', "
        "not a string ('everything')",
        "bp.yaml:13:5: use.functions.f: not a task: a task needs one of call, do, emit, for, fork, "
        "listen, raise, run, set, switch, try, wait",
    ]


def test_helpers() -> None:
    assert file_path(("do", 0, "a", "<call>", "<call http>", "with")) == ("do", 0, "a", "with")
    assert is_expression("  ${ .a }  ")
    assert is_expression("${\n  .a\n}")
    assert not is_expression("echo ${ .a }")
    assert is_expression("${}")  # one that does not compile: the checks say so
