"""The DSL features this runtime refuses, and what to use instead of each.

A blueprint is refused when it is loaded, not when it runs, if it uses a feature this runtime
does not execute: :class:`Refused` names each one, :data:`INSTEAD` says what to write instead, and
:func:`refusal` words the problem (every refusal contains :data:`NOT_SUPPORTED`, so a refusal for
a feature is told apart from a file that is wrong). :mod:`.checks` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ghapplets.blueprints.model_tasks import BuiltinCall

NOT_SUPPORTED = "is not supported by this runtime"


class Refused(StrEnum):
    """The DSL features this runtime does not execute; the value names the feature."""

    CALL_GRPC = "call: grpc"
    CALL_ASYNCAPI = "call: asyncapi"
    CALL_A2A = "call: a2a"
    CALL_MCP = "call: mcp"
    CATALOGED_FUNCTION = "a cataloged function (name:version@catalog)"
    FUNCTION_URI = "a custom function named by a URI"
    CATALOGS = "use.catalogs"
    EXTENSIONS = "use.extensions"
    RUN_CONTAINER = "run.container"
    SCRIPT_LANGUAGE = "run.script in this language"
    EXPRESSION_LANGUAGE = "an expression language other than jq"
    LOOSE_MODE = "evaluate.mode: loose"
    CERTIFICATE = "certificate authentication"
    DIGEST = "digest authentication"
    OIDC = "oidc authentication"
    OAUTH2_GRANT = "an oauth2 grant other than client_credentials"
    OAUTH2_CLIENT_AUTHENTICATION = "this oauth2 client authentication"
    OAUTH2_TOKEN_EXCHANGE = "oauth2 subject and actor tokens"  # noqa: S105 - not a password
    SCHEMA_RESOURCE = "a schema from an external resource"
    SCHEMA_FORMAT = "a schema format other than json"
    COMBINED_SCHEDULE = "a schedule that combines every, cron, after and on"
    SCHEDULE_ON_SEVERAL = "schedule.on with all, or with until (a run started by several events)"
    DSL_VERSION = "a DSL version other than 1.0.x"


_APPLET_OR_ACTION = "call an applet or a connector action instead"
INSTEAD: Mapping[Refused, str] = {
    Refused.CALL_GRPC: _APPLET_OR_ACTION,
    Refused.CALL_ASYNCAPI: "emit and listen to events, or " + _APPLET_OR_ACTION,
    Refused.CALL_A2A: _APPLET_OR_ACTION,
    Refused.CALL_MCP: _APPLET_OR_ACTION,
    Refused.CATALOGED_FUNCTION: "define the function in use.functions, or " + _APPLET_OR_ACTION,
    Refused.FUNCTION_URI: "define the function in use.functions, or " + _APPLET_OR_ACTION,
    Refused.CATALOGS: "define the functions in use.functions",
    Refused.EXTENSIONS: "put the tasks in the workflow's do list",
    Refused.RUN_CONTAINER: "use run.shell, or an exec applet (call: <applet>)",
    Refused.SCRIPT_LANGUAGE: "write it in js or python, or use run.shell",
    Refused.EXPRESSION_LANGUAGE: "write the expressions in jq",
    Refused.LOOSE_MODE: "use strict mode, with expressions written ${ ... }",
    Refused.CERTIFICATE: "use basic, bearer or oauth2 (client_credentials)",
    Refused.DIGEST: "use basic, bearer or oauth2 (client_credentials)",
    Refused.OIDC: "use oauth2 with grant: client_credentials, or bearer",
    Refused.OAUTH2_GRANT: "use grant: client_credentials",
    Refused.OAUTH2_CLIENT_AUTHENTICATION: "use client_secret_basic or client_secret_post",
    Refused.OAUTH2_TOKEN_EXCHANGE: "use grant: client_credentials without subject and actor",
    Refused.SCHEMA_RESOURCE: "put the schema inline, as its document",
    Refused.SCHEMA_FORMAT: "use format: json (JSON Schema)",
    Refused.COMBINED_SCHEDULE: "keep one (another blueprint can hold another schedule)",
    Refused.SCHEDULE_ON_SEVERAL: "start on one event (one, or any), then listen for the others",
    Refused.DSL_VERSION: "write dsl: '1.0.3'",
}

REFUSED_CALLS = {
    BuiltinCall.GRPC: Refused.CALL_GRPC,
    BuiltinCall.ASYNCAPI: Refused.CALL_ASYNCAPI,
    BuiltinCall.A2A: Refused.CALL_A2A,
    BuiltinCall.MCP: Refused.CALL_MCP,
}
REFUSED_SCHEMES = {
    "certificate": Refused.CERTIFICATE,
    "digest": Refused.DIGEST,
    "oidc": Refused.OIDC,
}
SCRIPT_LANGUAGES = frozenset({"js", "javascript", "python"})
OAUTH2_CLIENT_AUTHENTICATIONS = frozenset({"client_secret_basic", "client_secret_post"})


def refusal(feature: Refused, shown: str | None = None) -> str:
    """The message refusing ``feature`` (``shown``: how this file wrote it, if more telling)."""
    return f"{shown or feature} {NOT_SUPPORTED}: {INSTEAD[feature]}"


__all__ = [
    "INSTEAD",
    "NOT_SUPPORTED",
    "OAUTH2_CLIENT_AUTHENTICATIONS",
    "REFUSED_CALLS",
    "REFUSED_SCHEMES",
    "SCRIPT_LANGUAGES",
    "Refused",
    "refusal",
]
