"""How a connector is written in ``ghapplets.yaml`` under ``connectors:``, one model per kind.

A value that holds a credential may be a literal or a reference (``${secret:name}``,
``${env:NAME}``, :mod:`ghapplets.secrets.refs`), resolved when the connectors open; the models
check only the shape. The kind is the discriminator::

    connectors:
      jira:
        kind: jira
        flavor: cloud
        base_url: https://acme.atlassian.net
        email: bot@example.com
        token: ${secret:jira_token}
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Seconds = Annotated[float, Field(gt=0, le=300)]


class ConnectorKind(StrEnum):
    GITHUB = "github"
    JIRA = "jira"
    SERVICENOW = "servicenow"
    SPLUNK = "splunk"


class JiraFlavor(StrEnum):
    CLOUD = "cloud"  # REST v3, basic auth with an email and an API token, rich text as ADF
    DATACENTER = "datacenter"  # REST v2, a personal access token as a bearer token


class ServiceNowGrant(StrEnum):
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"  # noqa: S105 - an OAuth grant's name


class _Connector(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: Seconds = 30.0  # each request to the vendor

    @property
    def caches_tokens(self) -> bool:
        """Does it mint short-lived tokens, shared through the store's token cache?"""
        return False


class GithubConnector(_Connector):
    """github.com or GitHub Enterprise Server: a GitHub App (``app_id`` + ``private_key``) or a
    ``token``. ``base_url`` is the REST API root (GHES: ``https://HOST/api/v3``)."""

    kind: Literal[ConnectorKind.GITHUB]
    base_url: str = "https://api.github.com"
    app_id: int | None = None
    private_key: str | None = None
    token: str | None = None
    installation_id: int | None = None  # default: the event's installation.id
    # a GitHub App's failed webhooks are redelivered by the worker (github_catchup.py): how
    # often it looks (seconds; null: never), and how far back
    catch_up_every: Annotated[float, Field(gt=0)] | None = 600.0
    catch_up_window: Annotated[float, Field(gt=0, le=3 * 86400)] = 86400.0

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> GithubConnector:
        app = self.app_id is not None or self.private_key is not None
        if app and (self.app_id is None or self.private_key is None):
            raise ValueError("a GitHub App needs both app_id and private_key")
        if app == (self.token is not None):
            raise ValueError("give either a GitHub App (app_id and private_key) or a token")
        return self

    @property
    def caches_tokens(self) -> bool:
        return self.app_id is not None  # installation tokens


class JiraConnector(_Connector):
    """Jira Cloud (``email`` + API ``token``) or Data Center (a personal access ``token``)."""

    kind: Literal[ConnectorKind.JIRA]
    flavor: JiraFlavor = JiraFlavor.CLOUD
    base_url: str
    email: str | None = None
    token: str

    @model_validator(mode="after")
    def _cloud_needs_email(self) -> JiraConnector:
        if self.flavor is JiraFlavor.CLOUD and not self.email:
            raise ValueError("Jira Cloud authenticates with email and token: email is missing")
        return self

    @property
    def api_version(self) -> str:
        return "3" if self.flavor is JiraFlavor.CLOUD else "2"


class ServiceNowConnector(_Connector):
    """The Table API, with basic auth (``username`` + ``password``) or OAuth2 (``client_id`` +
    ``client_secret``, and ``username`` + ``password`` for the password grant)."""

    kind: Literal[ConnectorKind.SERVICENOW]
    base_url: str
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    grant: ServiceNowGrant | None = None  # OAuth2; default: basic auth

    @model_validator(mode="after")
    def _credentials_for_the_grant(self) -> ServiceNowConnector:
        needs_user = self.grant in (None, ServiceNowGrant.PASSWORD)
        if needs_user and not (self.username and self.password):
            raise ValueError("username and password are needed (basic auth or password grant)")
        if self.grant is not None and not (self.client_id and self.client_secret):
            raise ValueError(f"the {self.grant} grant needs client_id and client_secret")
        return self

    @property
    def caches_tokens(self) -> bool:
        return self.grant is not None  # OAuth2 access and refresh tokens


class SplunkConnector(_Connector):
    """The HTTP Event Collector. ``url`` is the HEC's scheme, host and port; ``index``,
    ``sourcetype``, ``source`` and ``host`` are the defaults of each event."""

    kind: Literal[ConnectorKind.SPLUNK]
    url: str
    token: str
    index: str | None = None
    sourcetype: str | None = None
    source: str | None = None
    host: str | None = None


ConnectorConfig = Annotated[
    GithubConnector | JiraConnector | ServiceNowConnector | SplunkConnector,
    Field(discriminator="kind"),
]
