"""The fakes' configuration (``fakes.yaml``): apps, users, tokens, projects and webhook targets.

Every section has working defaults, so ``ghapplets fakes`` with no file serves all five fakes
with the development credentials listed in ``docs/fakes.md``. A GitHub App without a public key
gets a throwaway RSA key pair (:func:`generate_app_key`); its private key is what a connector
signs its JWTs with, written by the CLI to an owner-only file.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ghapplets.exceptions import ConfigError

Permission = Literal["read", "write", "admin"]
APP_PERMISSIONS: dict[str, Permission] = {
    "checks": "write",
    "contents": "write",
    "deployments": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}


class FakeName(StrEnum):
    """The fakes ``ghapplets fakes`` can run, in port order."""

    GITHUB = "github"
    JIRA = "jira"
    JIRA_DC = "jira-dc"
    SERVICENOW = "servicenow"
    SPLUNK = "splunk"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookTarget(_Model):
    """Where a fake sends its webhooks (a gateway's ``/hooks/{source}``) and the secret it signs
    them with. ``events``: the vendor events sent on their own when the API changes something
    (Jira: ``jira:issue_created``, ``jira:issue_updated``, ``comment_created``); others are sent
    only when asked for."""

    url: str
    secret: str
    events: list[str] = Field(default_factory=list)


# -- GitHub ---------------------------------------------------------------------------------------
class GitHubAppConfig(_Model):
    id: int = 1001
    client_id: str = "Iv23liGhappletsFake01"
    slug: str = "ghapplets-dev"
    name: str = "Ghapplets (dev)"
    owner: str = "octo-org"
    public_key: str | None = None  # PEM text
    public_key_file: Path | None = None
    webhook_secret: str | None = "github-webhook-secret"  # noqa: S105 - a development default
    permissions: dict[str, Permission] = Field(default_factory=lambda: dict(APP_PERMISSIONS))
    events: list[str] = Field(
        default_factory=lambda: ["issues", "pull_request", "push", "check_run", "deployment"]
    )

    def public_pem(self) -> str | None:
        if self.public_key:
            return self.public_key
        if self.public_key_file:
            return self.public_key_file.read_text()
        return None


class InstallationConfig(_Model):
    id: int = 2001
    app_id: int | None = None  # default: the only App
    account: str = "octo-org"
    account_type: Literal["Organization", "User"] = "Organization"
    repositories: list[str] = Field(default_factory=lambda: ["octo-org/hello-world"])
    repository_selection: Literal["all", "selected"] = "selected"
    permissions: dict[str, Permission] | None = None  # default: the App's
    suspended: bool = False


class IssueConfig(_Model):
    repo: str
    number: int
    title: str = "Example issue"
    body: str | None = None
    state: Literal["open", "closed"] = "open"


class GitHubConfig(_Model):
    apps: list[GitHubAppConfig] = Field(default_factory=lambda: [GitHubAppConfig()])
    installations: list[InstallationConfig] = Field(default_factory=lambda: [InstallationConfig()])
    issues: list[IssueConfig] = Field(
        default_factory=lambda: [IssueConfig(repo="octo-org/hello-world", number=1)]
    )
    token_ttl: int = Field(default=3600, ge=1, description="seconds an installation token lives")
    jwt_max_age: int = Field(
        default=60, ge=0, description="seconds an App JWT's iat may be in the past"
    )
    jwt_leeway: int = Field(
        default=5, ge=0, description="seconds of clock skew allowed on iat and exp"
    )
    rate_limit: int = Field(default=5000, ge=1, description="requests per hour per token")
    webhook_url: str | None = None  # where redelivered and sent deliveries go

    @model_validator(mode="after")
    def _installations_name_an_app(self) -> GitHubConfig:
        ids = {a.id for a in self.apps}
        if len(ids) != len(self.apps):
            raise ValueError("two apps have the same id")
        for inst in self.installations:
            if inst.app_id is None:
                if len(self.apps) != 1:
                    raise ValueError(f"installation {inst.id} needs app_id (several apps)")
                inst.app_id = self.apps[0].id
            elif inst.app_id not in ids:
                raise ValueError(f"installation {inst.id}: no app {inst.app_id}")
        return self


# -- Jira -----------------------------------------------------------------------------------------
class JiraFlavor(StrEnum):
    CLOUD = "cloud"
    DATACENTER = "datacenter"


class JiraUser(_Model):
    """Cloud: ``email`` + ``api_token`` (basic auth). Data Center: ``username`` + ``password``
    (basic auth) and/or ``token`` (a personal access token, ``Authorization: Bearer``)."""

    display_name: str = "Dev User"
    email: str | None = None
    api_token: str | None = None
    account_id: str = "5b10ac8d82e05b22cc7d4ef5"
    username: str | None = None
    password: str | None = None
    token: str | None = None


class JiraProject(_Model):
    key: str = "PROJ"
    name: str = "Platform"
    id: str | None = None
    issue_types: list[str] = Field(default_factory=lambda: ["Bug", "Task", "Story", "Epic"])


class JiraConfig(_Model):
    flavor: JiraFlavor = JiraFlavor.CLOUD
    users: list[JiraUser] = Field(default_factory=list)
    projects: list[JiraProject] = Field(default_factory=lambda: [JiraProject()])
    fields: list[str] = Field(default_factory=list, description="custom fields that may be set")
    webhook: WebhookTarget | None = None

    @model_validator(mode="after")
    def _default_user(self) -> JiraConfig:
        if not self.users:
            if self.flavor == JiraFlavor.CLOUD:
                self.users = [JiraUser(email="dev@example.com", api_token="jira-api-token")]  # noqa: S106
            else:
                self.users = [
                    JiraUser(username="dev", password="dev-password", token="jira-dc-pat")  # noqa: S106
                ]
        return self


# -- ServiceNow -----------------------------------------------------------------------------------
class ServiceNowUser(_Model):
    username: str = "admin"
    password: str = "servicenow-password"  # noqa: S105 - a development default


class OAuthClient(_Model):
    client_id: str = "servicenow-client"
    client_secret: str = "servicenow-client-secret"  # noqa: S105 - a development default


class ServiceNowWebhook(WebhookTarget):
    """Signed the way the gateway's ``servicenow`` source with the same settings verifies."""

    auth: Literal["bearer", "basic", "hmac"] = "bearer"
    username: str | None = None
    header: str = "X-ServiceNow-Signature"
    prefix: str = ""
    encoding: Literal["hex", "base64"] = "hex"


class ServiceNowConfig(_Model):
    users: list[ServiceNowUser] = Field(default_factory=lambda: [ServiceNowUser()])
    oauth_clients: list[OAuthClient] = Field(default_factory=lambda: [OAuthClient()])
    access_token_ttl: int = Field(default=1799, ge=1)
    refresh_token_ttl: int = Field(default=8_640_000, ge=1)
    tables: list[str] = Field(default_factory=list, description="tables besides the built-in ones")
    webhook: ServiceNowWebhook | None = None


# -- Splunk ---------------------------------------------------------------------------------------
class HecToken(_Model):
    token: str = "11111111-2222-3333-4444-555555555555"  # noqa: S105 - a development default
    name: str = "ghapplets"
    indexes: list[str] = Field(default_factory=list, description="allowed indexes; empty: any")
    default_index: str = "main"
    sourcetype: str = "httpevent"
    disabled: bool = False


class SplunkConfig(_Model):
    tokens: list[HecToken] = Field(default_factory=lambda: [HecToken()])
    allow_query_string: bool = False


class FakesConfig(_Model):
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    jira: JiraConfig = Field(default_factory=JiraConfig)
    jira_dc: JiraConfig = Field(
        default_factory=lambda: JiraConfig(flavor=JiraFlavor.DATACENTER),
        alias="jira-dc",
    )
    servicenow: ServiceNowConfig = Field(default_factory=ServiceNowConfig)
    splunk: SplunkConfig = Field(default_factory=SplunkConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def load_fakes_config(path: Path | None) -> FakesConfig:
    """The configuration in ``path`` (YAML), or the defaults; :class:`ConfigError` if invalid
    (a ``public_key_file`` that cannot be read included). Relative key files are relative to
    ``path``'s folder."""
    if path is None:
        return FakesConfig()
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    try:
        config = FakesConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError(problems) from None
    for app in config.github.apps:  # a key file is relative to the configuration's folder
        if app.public_key_file is not None and not app.public_key_file.is_absolute():
            app.public_key_file = path.parent / app.public_key_file
        try:
            app.public_pem()
        except OSError as exc:
            raise ConfigError([f"{path}: github app {app.id}: {exc}"]) from None
    return config


# -- keys -----------------------------------------------------------------------------------------
def generate_app_key() -> tuple[str, str]:
    """A throwaway GitHub App key pair: ``(private PEM, public PEM)`` (RSA 2048, PKCS#1 private
    key as GitHub hands them out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def write_private_key(path: Path, pem: str) -> Path:
    """Write ``pem`` to a new file only its owner can read (0600); an existing file is an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    return path


def with_generated_keys(config: FakesConfig) -> tuple[FakesConfig, dict[int, str]]:
    """``config`` where every App without a public key has a new one; the private keys by id."""
    private: dict[int, str] = {}
    apps = []
    for app in config.github.apps:
        if app.public_pem() is None:
            secret, public = generate_app_key()
            private[app.id] = secret
            app = app.model_copy(update={"public_key": public})
        apps.append(app)
    github = config.github.model_copy(update={"apps": apps})
    return config.model_copy(update={"github": github}), private
