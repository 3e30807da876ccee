"""Pydantic models of the DSL 1.0 objects that hold no tasks: the building blocks.

Durations, timeouts, endpoints and external resources, authentication policies, schemas and the
data flow objects (``input``, ``output``, ``export``), errors and error filters, retry policies,
events (properties, filters, correlations, consumption strategies) and resource catalogs. Each
model follows the DSL reference (``dsl-reference.md``) and the official JSON Schema: an object
that the schema closes (``unevaluatedProperties: false``) is a :class:`Closed` model, which
refuses unknown properties and explicit nulls; a mapping the schema leaves open on purpose
(CloudEvents extension attributes, ``additionalProperties: true``) is an :class:`Open` one.

Every union is discriminated (by the value's shape, or by which key is present) so that a wrong
value gets one precise error, not one per alternative. Union tags are written ``<like this>``;
:func:`file_path` drops them from an error location to get the key path in the file.

The models validate; they are not used to execute. The engine runs the plain data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# --- bases -------------------------------------------------------------------------------------


def _reject_null(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    nullable: frozenset[str] = getattr(cls, "nullable", frozenset())
    if value is None and info.field_name not in nullable:
        raise PydanticCustomError("null", "expected a value, not null (leave the key out)")
    return value


class Closed(BaseModel):
    """A DSL object with a fixed set of properties: unknown ones are refused, and so is an
    explicit ``null`` for a property that is not ``any`` (``nullable``: those that may be)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        return _reject_null(cls, value, info)

    def present(self, *keys: str) -> list[str]:
        """Which of the properties ``keys`` (as written in the file) are set."""
        fields = type(self).model_fields
        by_key = {(info.alias or name): name for name, info in fields.items()}
        return [key for key in keys if getattr(self, by_key[key]) is not None]

    def one_of(self, *keys: str, required: bool = True) -> None:
        """Refuse more than one of ``keys`` (and none, when ``required``)."""
        found = self.present(*keys)
        if len(found) > 1:
            raise PydanticCustomError(
                "one_of",
                "{found} cannot be combined: set exactly one of {keys}",
                {"found": " and ".join(found), "keys": ", ".join(keys)},
            )
        if required and not found:
            raise PydanticCustomError(
                "one_of", "set exactly one of {keys}", {"keys": ", ".join(keys)}
            )


class Open(Closed):
    """A DSL object whose listed properties are typed and whose other properties are free
    (CloudEvents extension attributes)."""

    model_config = ConfigDict(extra="allow", strict=True)


_TAG = re.compile(r"<[^<>]*>")


def file_path(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    """A pydantic error location as a key path in the file: without the union tags."""
    return tuple(part for part in loc if not (isinstance(part, str) and _TAG.fullmatch(part)))


def shape(value: Any) -> str | None:
    """The discriminator of a "string or mapping" union."""
    if isinstance(value, str):
        return "<string>"
    if isinstance(value, dict):
        return "<object>"
    return None


def keyed(*keys: str) -> Any:
    """A discriminator that picks ``<key>`` for the first of ``keys`` present in a mapping, else
    ``<other>`` for a mapping (or None for anything else)."""

    def pick(value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        return next((f"<{key}>" for key in keys if key in value), "<other>")

    return pick


# --- strings -----------------------------------------------------------------------------------

EXPRESSION = re.compile(r"^\s*\$\{.+\}\s*$", re.DOTALL)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*://")
_TEMPLATE = re.compile(r"[^{}]*(\{[^{}]+\}[^{}]*)*", re.DOTALL)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
ISO_DURATION = re.compile(
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)
_POINTER = re.compile(r"^(/([^~/]|~[01])*)*$", re.DOTALL)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def is_expression(value: str) -> bool:
    """A runtime expression in strict mode: the whole (stripped) string is ``${ ... }``."""
    return bool(EXPRESSION.match(value))


def _expression(value: str) -> str:
    if not is_expression(value):
        raise PydanticCustomError("expression", "expected a runtime expression: ${ ... }")
    return value


def _uri(value: str) -> str:
    if not _URI.match(value):
        raise PydanticCustomError(
            "uri",
            "expected a URI with a scheme, like https://host/path (got {value})",
            {"value": repr(value)},
        )
    if not _TEMPLATE.fullmatch(value):
        raise PydanticCustomError(
            "uri_template",
            "unbalanced or nested braces in the URI template {value}",
            {"value": repr(value)},
        )
    return value


def _uri_or_expression(value: str) -> str:
    return value if is_expression(value) else _uri(value)


def _semver(value: str) -> str:
    if not _SEMVER.match(value):
        raise PydanticCustomError(
            "semver", "expected a semantic version like 1.0.0 (got {value})", {"value": repr(value)}
        )
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError(
            "name",
            "expected 1 to 63 letters, digits or '-', starting and ending with a letter or a "
            "digit (got {value})",
            {"value": repr(value)},
        )
    return value


def _pointer_or_expression(value: str) -> str:
    if not is_expression(value) and not _POINTER.match(value):
        raise PydanticCustomError(
            "json_pointer", "expected a JSON pointer like /do/0/task, or a runtime expression"
        )
    return value


def _date_time_or_expression(value: str) -> str:
    if not is_expression(value) and not _DATE_TIME.match(value):
        raise PydanticCustomError(
            "date_time",
            "expected an RFC 3339 date-time like 2024-07-26T16:59:57Z, or a runtime expression",
        )
    return value


def _duration_string(value: str) -> str:
    if not is_expression(value) and not ISO_DURATION.match(value):
        raise PydanticCustomError(
            "duration",
            "expected an ISO 8601 duration like PT30S, a runtime expression, or a mapping like "
            "{seconds: 30} (got {value})",
            {"value": repr(value)},
        )
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise PydanticCustomError("empty", "expected a non-empty string")
    return value


RuntimeExpression = Annotated[str, AfterValidator(_expression)]
UriTemplate = Annotated[str, AfterValidator(_uri)]
UriOrExpression = Annotated[str, AfterValidator(_uri_or_expression)]
SemVer = Annotated[str, AfterValidator(_semver)]
DnsName = Annotated[str, AfterValidator(_name)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
PointerOrExpression = Annotated[str, AfterValidator(_pointer_or_expression)]
DateTimeOrExpression = Annotated[str, AfterValidator(_date_time_or_expression)]
DurationString = Annotated[str, AfterValidator(_duration_string)]

StringOrMapping = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[dict[str, Any], Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="string_or_mapping",
        custom_error_message="expected a runtime expression (a string) or a mapping",
    ),
]

# --- durations and timeouts --------------------------------------------------------------------


class DurationObject(Closed):
    """A duration by its parts (at least one)."""

    days: int | None = None
    hours: int | None = None
    minutes: int | None = None
    seconds: int | None = None
    milliseconds: int | None = None

    @model_validator(mode="after")
    def _some(self) -> DurationObject:
        if not self.present("days", "hours", "minutes", "seconds", "milliseconds"):
            raise PydanticCustomError(
                "duration", "a duration needs days, hours, minutes, seconds or milliseconds"
            )
        return self


Duration = Annotated[
    Annotated[DurationString, Tag("<string>")] | Annotated[DurationObject, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="duration",
        custom_error_message="expected a duration: an ISO 8601 string like PT30S, a runtime "
        "expression, or a mapping like {seconds: 30}",
    ),
]


class Timeout(Closed):
    after: Duration


TimeoutOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[Timeout, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="timeout",
        custom_error_message="expected a timeout ({after: duration}) or the name of one in "
        "use.timeouts",
    ),
]

# --- authentication ----------------------------------------------------------------------------


class SecretBased(Closed):
    """An authentication scheme whose settings are in a secret (``use``: its name)."""

    use: NonEmpty


class BasicProperties(Closed):
    username: str
    password: str


class BearerProperties(Closed):
    token: str


class DigestProperties(Closed):
    username: str
    password: str


class OAuth2Endpoints(Closed):
    token: str | None = None
    revocation: str | None = None
    introspection: str | None = None


class OAuth2Client(Closed):
    id: str | None = None
    secret: str | None = None
    assertion: str | None = None
    authentication: (
        Literal[
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "none",
        ]
        | None
    ) = None


class OAuth2Request(Closed):
    encoding: Literal["application/x-www-form-urlencoded", "application/json"] | None = None


class OAuth2Token(Closed):
    token: str
    type: str


Grant = Literal[
    "authorization_code",
    "client_credentials",
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]


class OidcProperties(Closed):
    """OpenID Connect (and the base of OAuth2): ``authority`` and ``grant`` are required by the
    reference (the JSON Schema leaves them optional)."""

    authority: UriTemplate
    grant: Grant
    client: OAuth2Client | None = None
    request: OAuth2Request | None = None
    issuers: list[str] | None = None
    scopes: list[str] | None = None
    audiences: list[str] | None = None
    username: str | None = None
    password: str | None = None
    subject: OAuth2Token | None = None
    actor: OAuth2Token | None = None

    @model_validator(mode="after")
    def _client(self) -> OidcProperties:
        client = self.client or OAuth2Client()
        method = client.authentication or "client_secret_post"
        if method != "none" and client.id is None:
            raise PydanticCustomError(
                "oauth2_client",
                "client.id is required unless client.authentication is none (it is {method})",
                {"method": method},
            )
        if method == "private_key_jwt" and client.assertion is None:
            raise PydanticCustomError(
                "oauth2_client", "client.assertion is required by private_key_jwt"
            )
        return self


class OAuth2Properties(OidcProperties):
    endpoints: OAuth2Endpoints | None = None


_by_use = keyed("use")

Basic = Annotated[
    Annotated[SecretBased, Tag("<use>")] | Annotated[BasicProperties, Tag("<other>")],
    Discriminator(_by_use, custom_error_type="basic", custom_error_message="expected a mapping"),
]
Bearer = Annotated[
    Annotated[SecretBased, Tag("<use>")] | Annotated[BearerProperties, Tag("<other>")],
    Discriminator(_by_use, custom_error_type="bearer", custom_error_message="expected a mapping"),
]
Digest = Annotated[
    Annotated[SecretBased, Tag("<use>")] | Annotated[DigestProperties, Tag("<other>")],
    Discriminator(_by_use, custom_error_type="digest", custom_error_message="expected a mapping"),
]
OAuth2 = Annotated[
    Annotated[SecretBased, Tag("<use>")] | Annotated[OAuth2Properties, Tag("<other>")],
    Discriminator(_by_use, custom_error_type="oauth2", custom_error_message="expected a mapping"),
]
Oidc = Annotated[
    Annotated[SecretBased, Tag("<use>")] | Annotated[OidcProperties, Tag("<other>")],
    Discriminator(_by_use, custom_error_type="oidc", custom_error_message="expected a mapping"),
]

AUTHENTICATION_SCHEMES = ("basic", "bearer", "certificate", "digest", "oauth2", "oidc")


class AuthenticationPolicy(Closed):
    """One authentication scheme. ``certificate`` is in the reference's list without any
    properties (and not in the JSON Schema): any mapping, refused later as unsupported."""

    basic: Basic | None = None
    bearer: Bearer | None = None
    certificate: dict[str, Any] | None = None
    digest: Digest | None = None
    oauth2: OAuth2 | None = None
    oidc: Oidc | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_use(cls, data: Any) -> Any:
        if isinstance(data, dict) and "use" in data:
            raise PydanticCustomError(
                "authentication_use",
                "an authentication defined in use.authentications cannot 'use' another one",
            )
        return data

    @model_validator(mode="after")
    def _one_scheme(self) -> AuthenticationPolicy:
        self.one_of(*AUTHENTICATION_SCHEMES)
        return self


class AuthenticationReference(Closed):
    """``{use: name}``: a policy defined in ``use.authentications``."""

    use: NonEmpty


ReferenceableAuthentication = Annotated[
    Annotated[AuthenticationReference, Tag("<use>")]
    | Annotated[AuthenticationPolicy, Tag("<other>")],
    Discriminator(
        _by_use,
        custom_error_type="authentication",
        custom_error_message="expected an authentication policy (a mapping)",
    ),
]

# --- endpoints, resources, catalogs ------------------------------------------------------------


class EndpointConfiguration(Closed):
    uri: UriOrExpression
    authentication: ReferenceableAuthentication | None = None


Endpoint = Annotated[
    Annotated[UriOrExpression, Tag("<string>")] | Annotated[EndpointConfiguration, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="endpoint",
        custom_error_message="expected an endpoint: a URI, a runtime expression, or a mapping "
        "with uri (and authentication)",
    ),
]


class ExternalResource(Closed):
    name: str | None = None
    endpoint: Endpoint


class ResourceCatalog(Closed):
    """A catalog of reusable resources (``use.catalogs``)."""

    endpoint: Endpoint


# --- schemas and the data flow -----------------------------------------------------------------


class Schema(Closed):
    """A schema, inline (``document``) or external (``resource``). ``format`` defaults to
    ``json`` (the JSON Schema's default; the reference calls it required, its examples omit
    it)."""

    format: str = "json"
    document: dict[str, Any] | None = None
    resource: ExternalResource | None = None

    @model_validator(mode="after")
    def _one(self) -> Schema:
        self.one_of("document", "resource")
        return self


class Input(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    from_: StringOrMapping | None = Field(None, alias="from")


class Output(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StringOrMapping | None = Field(None, alias="as")


class Export(Closed):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StringOrMapping | None = Field(None, alias="as")


# --- errors and retries ------------------------------------------------------------------------


class Error(Closed):
    """A Problem Details error (RFC 7807)."""

    type: UriOrExpression
    status: int
    instance: PointerOrExpression | None = None
    title: str | None = None
    detail: str | None = None


ErrorOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[Error, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="error",
        custom_error_message="expected an error (a mapping) or the name of one in use.errors",
    ),
]


class ErrorFilter(Closed):
    """The static error filter of a catch. The JSON Schema names the detail ``details`` while an
    error's property is ``detail``: both are accepted."""

    type: str | None = None
    status: int | None = None
    instance: str | None = None
    title: str | None = None
    details: str | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _some(self) -> ErrorFilter:
        if not self.model_fields_set:
            raise PydanticCustomError(
                "error_filter", "an error filter needs at least one of type, status, ..."
            )
        return self


class CatchErrors(Closed):
    with_: ErrorFilter | None = Field(None, alias="with")


class Backoff(Closed):
    """Exactly one strategy; its settings are not specified by the DSL (any mapping)."""

    constant: dict[str, Any] | None = None
    exponential: dict[str, Any] | None = None
    linear: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Backoff:
        self.one_of("constant", "exponential", "linear")
        return self


class AttemptLimit(Closed):
    count: int | None = None
    duration: Duration | None = None


class RetryLimit(Closed):
    attempt: AttemptLimit | None = None
    duration: Duration | None = None


class Jitter(Closed):
    from_: Duration = Field(alias="from")
    to: Duration


class RetryPolicy(Closed):
    when: str | None = None
    except_when: str | None = Field(None, alias="exceptWhen")
    delay: Duration | None = None
    backoff: Backoff | None = None
    limit: RetryLimit | None = None
    jitter: Jitter | None = None


RetryOrName = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[RetryPolicy, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="retry",
        custom_error_message="expected a retry policy (a mapping) or the name of one in "
        "use.retries",
    ),
]

# --- events ------------------------------------------------------------------------------------


class EventProperties(Open):
    """CloudEvents attributes; other (extension) attributes are free."""

    nullable = frozenset({"data"})

    id: str | None = None
    source: UriOrExpression | None = None
    type: str | None = None
    time: DateTimeOrExpression | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: UriOrExpression | None = None
    data: Any = None


class FilterProperties(EventProperties):
    """The attributes an event filter matches: at least one."""

    @model_validator(mode="after")
    def _some(self) -> FilterProperties:
        if not self.model_fields_set and not self.model_extra:
            raise PydanticCustomError(
                "event_filter", "an event filter needs at least one attribute (type, source, ...)"
            )
        return self


class EmittedProperties(EventProperties):
    """The attributes of an event to emit: ``source`` and ``type`` are required (``id``, that
    the reference also calls required, is generated by the runtime when absent, as in the
    official examples)."""

    source: UriOrExpression
    type: str


class Correlation(Closed):
    from_: str = Field(alias="from")
    expect: str | None = None


class EventFilter(Closed):
    with_: FilterProperties = Field(alias="with")
    correlate: dict[str, Correlation] | None = None


class EventConsumptionUntil(Closed):
    """The events whose consumption stops a listen (an ``until`` has no ``until`` itself)."""

    all: list[EventFilter] | None = None
    any: list[EventFilter] | None = None
    one: EventFilter | None = None

    @model_validator(mode="after")
    def _one(self) -> EventConsumptionUntil:
        self.one_of("all", "any", "one")
        return self


Until = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[EventConsumptionUntil, Tag("<object>")],
    Discriminator(
        shape,
        custom_error_type="until",
        custom_error_message="expected a runtime expression or the events to consume (all, "
        "any or one)",
    ),
]


class EventConsumptionStrategy(EventConsumptionUntil):
    """Which events to consume: ``all``, ``any`` (with an optional ``until``) or ``one``."""

    until: Until | None = None

    @model_validator(mode="after")
    def _until_with_any(self) -> EventConsumptionStrategy:
        if self.until is not None and self.any is None:
            raise PydanticCustomError("until", "'until' only applies to 'any'")
        return self


__all__ = [
    "AUTHENTICATION_SCHEMES",
    "EXPRESSION",
    "ISO_DURATION",
    "AuthenticationPolicy",
    "AuthenticationReference",
    "Backoff",
    "CatchErrors",
    "Closed",
    "Correlation",
    "DnsName",
    "Duration",
    "DurationObject",
    "EmittedProperties",
    "Endpoint",
    "EndpointConfiguration",
    "Error",
    "ErrorFilter",
    "ErrorOrName",
    "EventConsumptionStrategy",
    "EventConsumptionUntil",
    "EventFilter",
    "EventProperties",
    "Export",
    "ExternalResource",
    "Input",
    "Jitter",
    "NonEmpty",
    "OAuth2Properties",
    "OidcProperties",
    "Open",
    "Output",
    "ReferenceableAuthentication",
    "ResourceCatalog",
    "RetryOrName",
    "RetryPolicy",
    "RuntimeExpression",
    "Schema",
    "SemVer",
    "StringOrMapping",
    "Timeout",
    "TimeoutOrName",
    "UriOrExpression",
    "UriTemplate",
    "file_path",
    "is_expression",
    "keyed",
    "shape",
]
