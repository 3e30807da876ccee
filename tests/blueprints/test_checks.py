"""The semantic checks: flow directives, expressions, references and refused features."""

from __future__ import annotations

import textwrap

import pytest

from ghapplets.blueprints.checks import Catalog, compile_check, expression_body, secret_names
from ghapplets.blueprints.loader import Blueprint, parse_blueprint
from ghapplets.blueprints.refusals import INSTEAD, NOT_SUPPORTED, Refused, refusal
from ghapplets.exceptions import BlueprintInvalid

HEAD = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""  # five lines: the body starts at line 6


def load(body: str, catalog: Catalog | None = None) -> Blueprint:
    return parse_blueprint(HEAD + textwrap.dedent(body), "bp.yaml", catalog)


def problems(body: str, catalog: Catalog | None = None, head: str = HEAD) -> list[str]:
    with pytest.raises(BlueprintInvalid) as exc:
        parse_blueprint(head + textwrap.dedent(body), "bp.yaml", catalog)
    return [str(p) for p in exc.value.problems]


# --- flow --------------------------------------------------------------------------------------


def test_then_names_a_task_of_the_same_list() -> None:
    blueprint = load(
        """\
        do:
          - first: {set: {a: 1}, then: third}
          - second: {set: {b: 2}, then: exit}
          - third: {set: {c: 3}, then: continue}
          - fourth: {set: {d: 4}, then: end}
        """
    )
    assert blueprint.definition["do"][0]["first"]["then"] == "third"


def test_a_then_to_nowhere_names_the_target_and_the_tasks_it_could_be() -> None:
    assert problems(
        """\
        do:
          - first:
              set: {a: 1}
              then: thrid
          - third: {set: {c: 3}}
        """
    ) == [
        "bp.yaml:9:13: do.0.first.then: then: no task named 'thrid' in this list (did you mean "
        "'third'?) (the tasks of this list are: first, third; or continue, exit, end)"
    ]


def test_a_then_cannot_reach_another_depth() -> None:
    assert problems(
        """\
        do:
          - outer:
              do:
                - inner: {set: {a: 1}, then: sibling}
          - sibling:
              do:
                - deep: {set: {b: 1}}
              then: inner
        """
    ) == [
        "bp.yaml:9:38: do.0.outer.do.0.inner.then: then: 'sibling' is a task at another depth "
        "(line 10); a flow directive only reaches the tasks of its own list (the tasks of this "
        "list are: inner; or continue, exit, end)",
        "bp.yaml:13:13: do.1.sibling.then: then: 'inner' is a task at another depth (line 9); a "
        "flow directive only reaches the tasks of its own list (the tasks of this list are: "
        "outer, sibling; or continue, exit, end)",
    ]


def test_switch_cases_go_to_tasks_of_the_switch_list() -> None:
    assert problems(
        """\
        do:
          - route:
              switch:
                - small: {when: .size < 10, then: small}
                - big: {when: .size >= 10, then: large}
                - other: {then: exit}
          - small: {set: {size: small}}
        """
    ) == [
        "bp.yaml:10:42: do.0.route.switch.1.big.then: then: no task named 'large' in this list "
        "(the tasks of this list are: route, small; or continue, exit, end)"
    ]


def test_a_switch_has_at_most_one_default_case() -> None:
    assert problems(
        """\
        do:
          - route:
              switch:
                - first: {then: continue}
                - cond: {when: .a, then: end}
                - second: {then: exit}
        """
    ) == [
        "bp.yaml:11:11: do.0.route.switch.2.second: a second default case (no 'when'): 'first' "
        "is already the default; a switch has at most one"
    ]


def test_task_names_are_unique_in_their_list_and_not_directives() -> None:
    assert problems(
        """\
        do:
          - step: {set: {a: 1}}
          - step: {set: {a: 2}}
          - end: {set: {a: 3}}
          - group:
              do:
                - step: {set: {a: 4}}
        """
    ) == [
        "bp.yaml:8:5: do.1.step: duplicate task name 'step' in this list (first at line 7)",
        "bp.yaml:9:5: do.2.end: a task cannot be named 'end': it is a flow directive",
    ]


def test_a_function_has_no_siblings_to_go_to() -> None:
    assert problems(
        """\
        use:
          functions:
            f: {set: {a: 1}, then: g}
            g: {set: {a: 1}, then: exit}
        do:
          - call: {call: f}
        """
    ) == [
        "bp.yaml:8:28: use.functions.f.then: then: 'g' names a task, but a function has no "
        "sibling tasks: use continue, exit or end"
    ]


# --- expressions -------------------------------------------------------------------------------


def test_compile_check() -> None:
    assert compile_check(".a + 1", []) is None
    assert compile_check("$pet.name", ["pet"]) is None
    assert compile_check("$pet.name", ["item"]) == ("$pet is not defined, line 1, column 1")
    assert compile_check(".a +", []) == "syntax error, unexpected end of file, line 1, column 4"
    assert expression_body("  ${ .a }  ") == ".a"
    assert expression_body(".a") == ".a"
    assert secret_names('$secrets.token + $secrets["api-key"] + $secrets . other') == [
        "token",
        "api-key",
        "other",
    ]


def test_an_expression_that_does_not_compile_is_located_at_its_value() -> None:
    assert problems(
        """\
        do:
          - get:
              call: http
              with:
                method: get
                endpoint: https://example.com
                body:
                  name:     ${ .name | }
        """
    ) == [
        "bp.yaml:13:21: do.0.get.with.body.name: invalid runtime expression: syntax error, "
        "unexpected end of file, line 1, column 7"
    ]


def test_every_bare_expression_field_is_compiled() -> None:
    found = problems(
        """\
        input: {from: .a |}
        output: {as: .b |}
        do:
          - t:
              if: .c |
              input: {from: '${ .d | }'}
              output: {as: .e |}
              export: {as: .f |}
              for: {in: .g |}
              while: .h |
              do: [{x: {set: '${ .i | }'}}, {y: {set: just text}}]
          - s:
              switch: [{c: {when: .j |, then: exit}}]
          - l:
              listen:
                to:
                  any: [{with: {type: t}, correlate: {k: {from: .k |, expect: '${ .l | }'}}}]
                  until: .m |
          - r:
              try: [{x: {wait: PT1S}}]
              catch: {when: .n |, exceptWhen: .o |, retry: {when: .p |, exceptWhen: .q |}}
        """
    )
    wheres = [p.split(": ")[1] for p in found]
    assert wheres == [
        "input.from",
        "output.as",
        "do.0.t.if",
        "do.0.t.input.from",
        "do.0.t.output.as",
        "do.0.t.export.as",
        "do.0.t.for.in",
        "do.0.t.while",
        "do.0.t.do.0.x.set",
        "do.1.s.switch.0.c.when",
        "do.2.l.listen.to.any.0.correlate.k.from",
        "do.2.l.listen.to.any.0.correlate.k.expect",
        "do.2.l.listen.to.until",
        "do.3.r.catch.when",
        "do.3.r.catch.exceptWhen",
        "do.3.r.catch.retry.when",
        "do.3.r.catch.retry.exceptWhen",
    ]
    assert all("invalid runtime expression: syntax error" in p for p in found)
    assert found[0].startswith("bp.yaml:6:15: ")


def test_strings_that_are_not_whole_expressions_are_literals() -> None:
    blueprint = load(
        """\
        do:
          - run:
              run:
                shell:
                  command: 'echo "Hello, ${ .user.name | }"'
                  environment: {A: 'a ${ }', B: '${ .b } and more'}
          - say:
              set:
                text: 'costs $5 ${'
                expect: .a |
        """
    )
    assert blueprint.definition["do"][1]["say"]["set"]["expect"] == ".a |"


def test_variables_exist_only_where_they_are_defined() -> None:
    assert problems(
        """\
        do:
          - each:
              for: {each: pet, in: .pets}
              while: $index < 10 and $pet != null
              do:
                - show: {set: {pet: '${ $pet }', at: '${ $index }'}}
          - after: {set: {pet: '${ $pet }'}}
          - safe:
              try: [{x: {wait: PT1S}}]
              catch:
                as: failure
                when: $failure.status == 500
                do: [{log: {set: {e: '${ $failure }', d: '${ $error }'}}}]
          - hear:
              listen: {to: {any: []}}
              foreach:
                do: [{x: {set: {i: '${ $item }', n: '${ $index }'}}}]
                output: {as: '${ $item }'}
          - defaultError:
              try: [{x: {wait: PT1S}}]
              catch: {do: [{log: {set: {e: '${ $error }'}}}]}
        """
    ) == [
        "bp.yaml:12:24: do.1.after.set.pet: invalid runtime expression: $pet is not defined, "
        "line 1, column 1",
        "bp.yaml:18:50: do.2.safe.catch.do.0.log.set.d: invalid runtime expression: $error is "
        "not defined, line 1, column 1",
    ]


def test_variable_names_must_be_usable() -> None:
    assert problems(
        """\
        do:
          - each:
              for: {each: my-pet, in: .pets, at: input}
              do: [{x: {set: {a: 1}}}]
          - safe:
              try: [{x: {wait: PT1S}}]
              catch: {as: 'the error'}
          - hear:
              listen: {to: {any: []}}
              foreach: {item: context}
        """
    ) == [
        "bp.yaml:8:19: do.0.each.for.each: 'my-pet' cannot name a variable: use letters, digits "
        "and '_'",
        "bp.yaml:8:42: do.0.each.for.at: 'input' would hide the runtime argument $input: pick "
        "another",
        "bp.yaml:12:19: do.1.safe.catch.as: 'the error' cannot name a variable: use letters, "
        "digits and '_'",
        "bp.yaml:15:23: do.2.hear.foreach.item: 'context' would hide the runtime argument "
        "$context: pick another",
    ]


def test_secrets_used_in_expressions_are_declared() -> None:
    assert problems(
        """\
        use:
          secrets: [token]
        do:
          - get:
              call: http
              with:
                method: get
                endpoint: https://example.com
                headers:
                  authorization: ${ "Bearer " + $secrets.token }
                  x-other: ${ $secrets.other }
                  x-quoted: '${ $secrets["api-key"] }'
        """
    ) == [
        "bp.yaml:16:20: do.0.get.with.headers.x-other: uses secret 'other', which is not listed "
        "in use.secrets",
        "bp.yaml:17:21: do.0.get.with.headers.x-quoted: uses secret 'api-key', which is not "
        "listed in use.secrets",
    ]


# --- references --------------------------------------------------------------------------------


def test_named_components_must_exist() -> None:
    assert problems(
        """\
        use:
          errors: {notFound: {type: 'https://example.com/e', status: 404}}
          retries: {twice: {limit: {attempt: {count: 2}}}}
          timeouts: {short: {after: PT1S}}
          authentications: {github: {bearer: {token: t}}, vault: {basic: {use: creds}}}
        timeout: long
        do:
          - fail: {raise: {error: notFund}}
          - safe:
              try: [{x: {wait: PT1S, timeout: short}}]
              catch: {retry: thrice}
          - get:
              call: http
              with: {method: get, endpoint: {uri: 'https://example.com', authentication: {use: gh}}}
          - spec:
              call: openapi
              with:
                document:
                  endpoint: {uri: 'https://example.com/o.json', authentication: {use: github}}
                operationId: x
                authentication: {use: vault}
        """
    ) == [
        "bp.yaml:10:72: use.authentications.vault.basic.use: uses secret 'creds', which is not "
        "listed in use.secrets",
        "bp.yaml:11:10: timeout: no timeout named 'long' in use.timeouts (it has: short)",
        "bp.yaml:13:27: do.0.fail.raise.error: no error named 'notFund' in use.errors (it has: "
        "notFound) (did you mean 'notFound'?)",
        "bp.yaml:16:22: do.1.safe.catch.retry: no retry policy named 'thrice' in use.retries (it "
        "has: twice) (did you mean 'twice'?)",
        "bp.yaml:19:88: do.2.get.with.endpoint.authentication.use: no authentication named 'gh' "
        "in use.authentications (it has: github, vault)",
    ]


def test_references_and_expressions_are_checked_everywhere() -> None:
    found = problems(
        """\
        use:
          errors: {e: {type: 'https://x.com/e', status: 500, detail: '${ .a | }'}}
          timeouts: {t: {after: '${ .b | }'}}
        schedule:
          on:
            any: [{with: {type: t, data: '${ .c | }'}}, {with: {type: u, data: '${ .d | }'}}]
        do:
          - spec:
              call: openapi
              with:
                document: {endpoint: {uri: 'https://x.com/o.json', authentication: {use: nope1}}}
                operationId: x
                authentication: {use: nope2}
          - script:
              run:
                script:
                  language: python
                  source: {endpoint: {uri: 'https://x.com/a.py', authentication: {use: nope3}}}
          - wait: {wait: '${ .e | }'}
        """
    )
    assert [p.split(": ", 2)[1] for p in found] == [
        "use.errors.e.detail",
        "use.timeouts.t.after",
        "schedule.on.any.0.with.data",
        "schedule.on.any.1.with.data",
        "do.0.spec.with.document.endpoint.authentication.use",
        "do.0.spec.with.authentication.use",
        "do.1.script.run.script.source.endpoint.authentication.use",
        "do.2.wait.wait",
    ]
    assert problems("schedule: {every: '${ .x | }'}\ndo: []\n")[0].startswith(
        "bp.yaml:6:19: schedule.every: invalid runtime expression: syntax error"
    )
    assert problems("schedule: {after: '${ .x | }'}\ndo: []\n")[0].startswith(
        "bp.yaml:6:19: schedule.after: invalid runtime expression: syntax error"
    )


def test_calls_name_a_function_an_applet_or_an_action() -> None:
    body = """\
        use:
          functions: {local: {set: {a: 1}}}
        do:
          - a: {call: local}
          - b: {call: triage}
          - c: {call: jira.create_issue}
          - d: {call: triag}
          - e: {call: jira.create_isue}
        """
    catalog = Catalog(applets=frozenset({"triage"}), actions=frozenset({"jira.create_issue"}))
    assert problems(body, catalog) == [
        "bp.yaml:12:15: do.3.d.call: call: 'triag' is not http, openapi, a function of "
        "use.functions nor an applet (did you mean 'triage'?) (functions: local; applets: triage)",
        "bp.yaml:13:15: do.4.e.call: no connector action named 'jira.create_isue' (did you mean "
        "'jira.create_issue'?) (actions: jira.create_issue)",
    ]
    load(body)  # the platform does not say: any name goes
    load(body, Catalog(secrets=frozenset()))


def test_declared_secrets_exist_when_the_platform_knows_them() -> None:
    body = "use:\n  secrets: [token, tokn]\ndo: []\n"
    assert problems(body, Catalog(secrets=frozenset({"token"}))) == [
        "bp.yaml:7:20: use.secrets.1: no secret named 'tokn' in this project (did you mean "
        "'token'?)"
    ]
    load(body)


def test_a_subflow_exists_when_the_platform_knows_the_blueprints() -> None:
    body = """\
        do:
          - a: {run: {workflow: {namespace: test, name: child, version: '1.0.0'}}}
          - b: {run: {workflow: {namespace: test, name: child, version: latest}}}
          - c: {run: {workflow: {namespace: test, name: child, version: '2.0.0'}}}
          - d: {run: {workflow: {namespace: test, name: orphan, version: '1.0.0'}}}
        """
    known = Catalog(blueprints=frozenset({("test", "child", "1.0.0"), ("test", "child", "1.1.0")}))
    assert problems(body, known) == [
        "bp.yaml:9:15: do.2.c.run.workflow: run.workflow: test/child: no version '2.0.0' (it has: "
        "1.0.0, 1.1.0)",
        "bp.yaml:10:15: do.3.d.run.workflow: run.workflow: test/orphan: no such blueprint",
    ]
    load(body)


# --- refused features --------------------------------------------------------------------------


def test_every_refusal_says_what_to_use_instead() -> None:
    assert set(INSTEAD) == set(Refused)
    assert refusal(Refused.RUN_CONTAINER) == (
        "run.container is not supported by this runtime: use run.shell, or an exec applet "
        "(call: <applet>)"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "do:\n  - g: {call: grpc, with: {proto: {endpoint: 'file://a.proto'}, method: m, "
            "service: {name: s, host: h}}}\n",
            "7:15: do.0.g.call: call: grpc " + NOT_SUPPORTED + ": call an applet or a connector "
            "action instead",
        ),
        (
            "do:\n  - a: {call: asyncapi, with: {document: {endpoint: 'https://x.com/a'}, "
            "operation: o, message: {}}}\n",
            "7:15: do.0.a.call: call: asyncapi " + NOT_SUPPORTED + ": emit and listen to events, "
            "or call an applet or a connector action instead",
        ),
        (
            "do:\n  - a: {call: a2a, with: {method: tasks/get, server: 'https://x.com'}}\n",
            "7:15: do.0.a.call: call: a2a " + NOT_SUPPORTED + ": call an applet or a connector "
            "action instead",
        ),
        (
            "do:\n  - m: {call: mcp, with: {method: tools/list, transport: {stdio: {command: x}}}}"
            "\n",
            "7:15: do.0.m.call: call: mcp " + NOT_SUPPORTED + ": call an applet or a connector "
            "action instead",
        ),
        (
            "do:\n  - l: {call: 'log:1.0.0@global'}\n",
            "7:15: do.0.l.call: a cataloged function (name:version@catalog): 'log:1.0.0@global' "
            + NOT_SUPPORTED
            + ": define the function in use.functions, or call an applet or a "
            "connector action instead",
        ),
        (
            "do:\n  - l: {call: 'https://example.com/functions/log.yaml'}\n",
            "7:15: do.0.l.call: a custom function named by a URI "
            "(https://example.com/functions/log.yaml) " + NOT_SUPPORTED + ": define the function "
            "in use.functions, or call an applet or a connector action instead",
        ),
        (
            "use:\n  catalogs: {global: {endpoint: 'https://example.com/catalog'}}\ndo: []\n",
            "7:3: use.catalogs: use.catalogs " + NOT_SUPPORTED + ": define the functions in "
            "use.functions",
        ),
        (
            "use:\n  extensions: [{log: {extend: all}}]\ndo: []\n",
            "7:3: use.extensions: use.extensions " + NOT_SUPPORTED + ": put the tasks in the "
            "workflow's do list",
        ),
        (
            "do:\n  - c: {run: {container: {image: alpine}}}\n",
            "7:15: do.0.c.run.container: run.container " + NOT_SUPPORTED + ": use run.shell, or "
            "an exec applet (call: <applet>)",
        ),
        (
            "do:\n  - s: {run: {script: {language: ruby, code: puts}}}\n",
            "7:34: do.0.s.run.script.language: run.script language 'ruby' "
            + NOT_SUPPORTED
            + ": write it in js or python, or use run.shell",
        ),
        (
            "evaluate: {language: javascript}\ndo: []\n",
            "6:22: evaluate.language: evaluate.language 'javascript' "
            + NOT_SUPPORTED
            + ": write the expressions in jq",
        ),
        (
            "evaluate: {mode: loose}\ndo: []\n",
            "6:18: evaluate.mode: evaluate.mode: loose " + NOT_SUPPORTED + ": use strict mode, "
            "with expressions written ${ ... }",
        ),
        (
            "use:\n  authentications: {c: {certificate: {}}}\ndo: []\n",
            "7:25: use.authentications.c.certificate: certificate authentication "
            + NOT_SUPPORTED
            + ": use basic, bearer or oauth2 (client_credentials)",
        ),
        (
            "use:\n  authentications: {d: {digest: {username: u, password: p}}}\ndo: []\n",
            "7:25: use.authentications.d.digest: digest authentication "
            + NOT_SUPPORTED
            + ": use basic, bearer or oauth2 (client_credentials)",
        ),
        (
            "do:\n  - get:\n      call: http\n      with:\n        method: get\n        endpoint:\n"
            "          uri: https://example.com\n          authentication:\n            oidc: "
            "{authority: 'https://a.x.com', grant: client_credentials, client: {id: i}}\n",
            "14:13: do.0.get.with.endpoint.authentication.oidc: oidc authentication "
            + NOT_SUPPORTED
            + ": use oauth2 with grant: client_credentials, or bearer",
        ),
        (
            "use:\n  authentications:\n    o: {oauth2: {authority: 'https://a.x.com', grant: "
            "password, client: {id: i}}}\ndo: []\n",
            "8:55: use.authentications.o.oauth2.grant: oauth2 grant 'password' "
            + NOT_SUPPORTED
            + ": use grant: client_credentials",
        ),
        (
            "use:\n  authentications:\n    o:\n      oauth2: {authority: 'https://a.x.com', grant: "
            "client_credentials,\n               client: {id: i, authentication: "
            "client_secret_jwt}}\ndo: []\n",
            "10:48: use.authentications.o.oauth2.client.authentication: oauth2 client "
            "authentication 'client_secret_jwt' " + NOT_SUPPORTED + ": use client_secret_basic "
            "or client_secret_post",
        ),
        (
            "use:\n  authentications:\n    o:\n      oauth2:\n        authority: 'https://a.x.com'\n"
            "        grant: client_credentials\n        client: {id: i}\n        subject: {token: "
            "t, type: urn:x}\ndo: []\n",
            "13:9: use.authentications.o.oauth2.subject: oauth2 subject "
            + NOT_SUPPORTED
            + ": use grant: client_credentials without subject and actor",
        ),
        (
            "input:\n  schema: {resource: {endpoint: 'https://example.com/s.json'}}\ndo: []\n",
            "7:12: input.schema.resource: a schema from an external resource "
            + NOT_SUPPORTED
            + ": put the schema inline, as its document",
        ),
        (
            "input:\n  schema: {format: avro, document: {}}\ndo: []\n",
            "7:20: input.schema.format: schema format 'avro' " + NOT_SUPPORTED + ": use format: "
            "json (JSON Schema)",
        ),
        (
            "schedule: {every: PT1H, cron: '0 * * * *'}\ndo: []\n",
            "6:1: schedule: a schedule with every and cron " + NOT_SUPPORTED + ": keep one "
            "(another blueprint can hold another schedule)",
        ),
    ],
)
def test_refused_features(body: str, expected: str) -> None:
    assert problems(body) == [f"bp.yaml:{expected}"]


def test_other_dsl_versions_are_refused() -> None:
    head = HEAD.replace("'1.0.3'", "'1.1.0'")
    assert problems("do: []\n", head=head) == [
        f"bp.yaml:2:8: document.dsl: dsl '1.1.0' {NOT_SUPPORTED}: write dsl: '1.0.3'"
    ]
    for version in ("1.0.0", "1.0.3", "1.0.12-rc1"):
        load_head = HEAD.replace("'1.0.3'", f"'{version}'")
        assert parse_blueprint(load_head + "do: []\n", "bp.yaml").dsl == version


@pytest.mark.parametrize(
    "grant",
    [
        "authorization_code",
        "password",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ],
)
def test_oauth2_grants_other_than_client_credentials_are_refused(grant: str) -> None:
    [problem] = problems(
        "use:\n  authentications:\n    o: {oauth2: {authority: 'https://a.x.com', "
        f"grant: '{grant}', client: {{id: i}}}}}}\ndo: []\n"
    )
    assert problem.startswith(
        f"bp.yaml:8:55: use.authentications.o.oauth2.grant: oauth2 grant '{grant}' "
    )


def test_what_is_allowed_of_oauth2_schemas_and_scripts() -> None:
    load(
        """\
        input:
          schema: {format: 'json:2020-12', document: {type: object}}
        output:
          schema: {document: {type: object}}
        use:
          authentications:
            post:
              oauth2:
                authority: 'https://auth.example.com'
                grant: client_credentials
                client: {id: me, secret: s, authentication: client_secret_post}
                request: {encoding: application/json}
                scopes: [api]
        do:
          - js: {run: {script: {language: js, code: 'console.log(1)'}}}
          - javascript: {run: {script: {language: JavaScript, code: 'console.log(1)'}}}
          - python: {run: {script: {language: python, source: {endpoint: 'https://x.com/a.py'}}}}
        """
    )


def test_a_cron_expression_must_parse() -> None:
    [problem] = problems("schedule: {cron: '61 * * * *'}\ndo: []\n")
    assert problem.startswith("bp.yaml:6:18: schedule.cron: invalid cron expression '61 * * * *': ")


def test_an_inline_schema_must_be_a_json_schema() -> None:
    assert problems(
        """\
        input:
          schema:
            document:
              type: object
              properties:
                id: {type: identifier}
        do: []
        """
    ) == [
        "bp.yaml:11:14: input.schema.document.properties.id.type: not a valid JSON Schema: "
        "'identifier' is not valid under any of the given schemas"
    ]


def test_yaml_1_2_booleans_stay_strings_in_a_blueprint() -> None:
    blueprint = load(
        """\
        schedule:
          on: {one: {with: {type: com.example.push}}}
        do:
          - flags: {set: {on: yes, off: no, answer: y, really: true}}
        """
    )
    assert "on" in blueprint.definition["schedule"]
    assert blueprint.definition["do"][0]["flags"]["set"] == {
        "on": "yes",
        "off": "no",
        "answer": "y",
        "really": True,
    }


def test_an_empty_expression_is_refused() -> None:
    found = problems(
        """\
        do:
          - t:
              set: '${}'
        """
    )
    assert len(found) == 1
    assert "do.0.t.set: invalid runtime expression" in found[0]


def test_a_schedule_started_by_several_events_is_refused() -> None:
    found = problems(
        """\
        schedule:
          on:
            all:
              - with: {type: a}
              - with: {type: b}
        do:
          - t:
              set: '${ . }'
        """
    )
    assert len(found) == 1
    assert "schedule.on with all, or with until" in found[0]
    assert "is not supported by this runtime" in found[0]
