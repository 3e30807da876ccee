"""Pydantic models of the DSL's authentication policies, and of what holds one: endpoints,
external resources and resource catalogs.

A policy is one scheme (``basic``, ``bearer``, ``certificate``, ``digest``, ``oauth2``, ``oidc``),
each inline or from a secret (``{use: secret}``); where a policy may be given, ``{use: name}``
names one of ``use.authentications`` instead. See :mod:`.model_base` for the conventions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Tag, model_validator
from pydantic_core import PydanticCustomError

from ghapplets.blueprints.model_base import (
    Closed,
    NonEmpty,
    UriOrExpression,
    UriTemplate,
    keyed,
    shape,
)

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


__all__ = [
    "AUTHENTICATION_SCHEMES",
    "AuthenticationPolicy",
    "AuthenticationReference",
    "Basic",
    "BasicProperties",
    "Bearer",
    "BearerProperties",
    "Digest",
    "DigestProperties",
    "Endpoint",
    "EndpointConfiguration",
    "ExternalResource",
    "Grant",
    "OAuth2",
    "OAuth2Client",
    "OAuth2Endpoints",
    "OAuth2Properties",
    "OAuth2Request",
    "OAuth2Token",
    "Oidc",
    "OidcProperties",
    "ReferenceableAuthentication",
    "ResourceCatalog",
    "SecretBased",
]
