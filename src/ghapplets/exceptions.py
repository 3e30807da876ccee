"""Every error Ghapplets raises on purpose, in one tree, and the error types a job can record.

A leaf module: it imports nothing else of Ghapplets, so any layer (sources, stores, brokers,
runtimes, the CLI) can raise and catch these without pulling in another. Catch
:class:`GhappletsError` for "anything Ghapplets reported"; the branches say what went wrong:

- :class:`ConfigError`: a configuration file or manifest is wrong (with file:line:col problems);
  :class:`BlueprintInvalid`: a blueprint (a workflow file) is wrong or uses a feature this
  runtime refuses;
- :class:`NotFound`: a named record (delivery, job, secret, applet, run) does not exist;
  :class:`AlreadyExists`: a record of that name exists already (an admin API token's name);
- :class:`InvalidRecord`: a record the store refuses to write (a key past its length limit,
  a value that is not JSON it can keep), named in the message; nothing of the write is kept;
- :class:`Unavailable`: a backend cannot serve now (:class:`BrokerUnavailable`,
  :class:`StoreUnavailable`); the gateway answers 503 and the vendor retries;
- :class:`DataFolderBusy`: another server holds the embedded data folder;
- :class:`BackupError`: a backup archive cannot be read (:class:`BackupInvalid`: damaged,
  truncated, or of a format this version does not know) or restored here
  (:class:`RestoreRefused`: the target holds data and ``--force`` was not given);
- :class:`SecretKeyError` (:class:`SecretKeyMismatch`), :class:`SecretScopeError` and
  :class:`UnresolvedReference`: secrets cannot be read, may not be read here, or cannot be
  resolved; :class:`InvalidSecret`: a secret's name, scope or value is not acceptable;
  :class:`SecretBackendError`: an external secrets backend (OpenBao, Kubernetes files) refuses
  or cannot serve a request (:class:`SecretBackendUnavailable`, retryable;
  :class:`SecretsReadOnly`, a write to a backend that only reads);
- :class:`VerificationError` (:class:`ClientNotAllowed`) and :class:`MalformedPayload`: a
  webhook is refused (401 (403) / 400), with a :class:`RejectReason`;
- :class:`AppletError`: an applet run ended in error (retryable or permanent), or could not
  start (:class:`AppletStalled`); a connector action failed (:class:`ActionFailed`,
  :class:`ActionUnavailable`, :class:`ActionInputInvalid`, :class:`ConnectorNotAllowed`), so a
  job that calls one retries or dead-letters as usual;
- :class:`NotExportable`: part of a project has no equivalent where it is exported to (a
  blueprint task a Fission Workflow cannot express);
- :class:`BlueprintError`: a blueprint run faulted, described as the Serverless Workflow DSL's
  Problem Details error (``type``, ``status``, ``title``, ``detail``, ``instance``): the error
  its ``try`` blocks catch and its run ends with; :class:`ExpressionInvalid`: a blueprint's
  runtime expression does not compile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any


class GhappletsError(Exception):
    """The root of every error Ghapplets raises on purpose."""


class ConfigError(GhappletsError):
    """One or more located problems in a configuration file or manifest."""

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BlueprintInvalid(ConfigError):
    """One or more located problems in blueprint files: not YAML 1.2 / JSON, not the Serverless
    Workflow DSL, a reference or flow directive that names nothing, or a feature this runtime
    does not execute."""


class NotFound(GhappletsError, LookupError):
    """A named record does not exist (or the name is ambiguous without more detail)."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(GhappletsError):
    """A record of that name exists already (and names are unique)."""


class InvalidRecord(GhappletsError, ValueError):
    """A record the store cannot keep as it is: a key or name past its limit (or with a NUL
    character, which PostgreSQL's text cannot hold), or a value that is not storable JSON (too
    deeply nested, a non-string object key, an integer past 64 bits). The write is refused
    whole."""


class Unavailable(GhappletsError):
    """A backend cannot serve now; trying again later may work."""


class BrokerUnavailable(Unavailable):
    """The broker cannot accept or hand out messages now (the gateway answers 503)."""


class StoreUnavailable(Unavailable):
    """The store cannot take reads or writes (closed, unreachable, or the disk refuses them)."""


class DataFolderBusy(GhappletsError):
    """Another server (``serve``, ``gateway`` or ``worker``) holds the embedded data folder;
    ``pid`` is its process id when it wrote it into the lock file."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class BackupError(GhappletsError):
    """A backup cannot be taken, read or restored (the message says which and why)."""


class BackupInvalid(BackupError):
    """A backup archive is not one this version can read: damaged (a checksum or a count that
    does not match), truncated, missing a member, or of a newer format or schema."""


class RestoreRefused(BackupError):
    """A restore would overwrite data: the target store holds records (``--force`` clears
    them)."""


class SecretKeyError(GhappletsError):
    """The secrets key is missing or malformed, or a stored secret cannot be decrypted."""


class SecretKeyMismatch(SecretKeyError):
    """The secrets are encrypted with a key this process does not have (``stored``: that key's
    id), e.g. it still has the key from before ``ghapplets secrets rotate-key``."""

    def __init__(self, message: str, stored: str | None = None) -> None:
        super().__init__(message)
        self.stored = stored


class SecretScopeError(GhappletsError):
    """A secret exists but its scope does not let this reader have it (an applet reading a
    secret of another applet's scope, a source's settings reading a non-global secret)."""


class InvalidSecret(GhappletsError, ValueError):
    """A secret's name, scope or value is not acceptable."""


class SecretBackendError(GhappletsError):
    """The secrets backend refused a request or is configured wrongly (a token it denies, a
    mount that does not exist, an entry that is not a string); the message names the secret and
    where it was looked for, never a value."""


class SecretBackendUnavailable(SecretBackendError, Unavailable):
    """The secrets backend cannot answer now (unreachable, timed out, sealed); retrying may
    work."""


class SecretsReadOnly(SecretBackendError):
    """A write (``secrets set``, ``rm``, ``rotate-key``) to a backend that only reads."""


class UnresolvedReference(GhappletsError, LookupError):
    """A ``${env:X}`` or ``${secret:x}`` reference names nothing."""


class NotExportable(GhappletsError):
    """Part of a project has no equivalent where it is exported to (a blueprint's task that a
    Fission Workflow cannot express); the message says why, ``pointer`` (a JSON pointer into
    the definition, when known) where."""

    def __init__(self, message: str, *, pointer: str = "") -> None:
        super().__init__(message)
        self.pointer = pointer


class RejectReason(StrEnum):
    """Why the gateway refused a webhook: the ``reason`` label of
    ``ghapplets_webhooks_rejected_total`` and the ``error`` of the JSON answer.

    A closed set, so a metric series can only be one of these, whatever a sender sends.
    """

    # the sender is not proven to be the vendor (401; 403 for ip_not_allowed)
    NO_SECRET = "no_secret"  # noqa: S105 - a reason, not a secret
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason, not a secret
    BAD_TOKEN = "bad_token"  # noqa: S105 - a reason, not a secret
    MISSING_CREDENTIALS = "missing_credentials"
    BAD_CREDENTIALS = "bad_credentials"
    IP_NOT_ALLOWED = "ip_not_allowed"
    # the request itself
    UNKNOWN_SOURCE = "unknown_source"
    TOO_LARGE = "too_large"
    BODY_TIMEOUT = "body_timeout"
    DISCONNECTED = "disconnected"
    MALFORMED = "malformed"
    NORMALISE_ERROR = "normalise_error"
    UNAVAILABLE = "unavailable"
    # the connection, before a request reaches a source (counted under source="_unknown")
    HEADERS_TOO_LARGE = "headers_too_large"
    HEADER_TIMEOUT = "header_timeout"
    OVERLOADED = "overloaded"


class VerificationError(GhappletsError):
    """The request is not proven to come from the vendor (HTTP 401). ``reason`` labels the
    metric."""

    status: int = 401

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = RejectReason(reason)  # a closed set: another value is a ValueError here


class ClientNotAllowed(VerificationError):
    """The client address is outside the source's allow-list (HTTP 403): whoever it is, it may
    not send to this source."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__(RejectReason.IP_NOT_ALLOWED, message)


class MalformedPayload(GhappletsError, ValueError):
    """The verified body cannot be parsed or lacks what the vendor always sends."""


class ErrorType(StrEnum):
    """The error types the platform itself records on a failed attempt.

    Applet code may raise :class:`AppletError` with any type of its own; these are the ones
    the runtimes and the worker use, so dashboards and alerts can rely on their spelling.
    """

    ACTION_FAILED = "ActionFailed"
    ACTION_INPUT_INVALID = "ActionInputInvalid"
    ACTION_UNAVAILABLE = "ActionUnavailable"
    APPLET_ERROR = "AppletError"
    APPLET_NOT_FOUND = "AppletNotFound"
    BAD_OUTPUT = "BadOutput"
    BAD_REQUEST = "BadRequest"  # an adapter got a request that is no event (ghapplets.fission)
    CONNECTION_ERROR = "ConnectionError"
    CONNECTOR_NOT_ALLOWED = "ConnectorNotAllowed"
    CONNECTOR_UNUSABLE = "ConnectorUnusable"
    ENTRY_ERROR = "EntryError"
    EXIT_CODE = "ExitCode"
    NO_HANDLER = "NoHandler"
    OUTPUT_TOO_LARGE = "OutputTooLarge"
    PROGRAM_NOT_EXECUTABLE = "ProgramNotExecutable"
    PROGRAM_NOT_FOUND = "ProgramNotFound"
    SECRET_MISSING = "SecretMissing"  # noqa: S105 - an error type, not a secret
    SECRET_NOT_DECLARED = "SecretNotDeclared"  # noqa: S105 - an error type, not a secret
    SECRET_UNAVAILABLE = "SecretUnavailable"  # noqa: S105 - an error type, not a secret
    SIGNAL = "Signal"
    TIMEOUT = "Timeout"


class AppletError(GhappletsError):
    """Raised by applet code (or a runtime) to end a run with an error."""

    retryable: bool = False

    def __init__(
        self, message: str, *, type: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = str(type or self.__class__.__name__)
        self.retry_after = retry_after


class RetryableError(AppletError):
    """A transient failure: the job is retried with backoff until its attempts run out."""

    retryable = True


class PermanentError(AppletError):
    """A failure that retrying will not fix: the job is dead-lettered at once."""

    retryable = False


class AppletStalled(RetryableError):
    """No slot of the applet freed in time while its slots are held by calls past their
    timeout whose handlers have not returned (a retryable ``Timeout``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=ErrorType.TIMEOUT)


class ActionFailed(PermanentError):
    """The vendor refused an action (a 4xx other than 408/429): retrying will not help. The
    message is the vendor's; ``status`` its HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, type=ErrorType.ACTION_FAILED)
        self.status = status


class ActionUnavailable(RetryableError):
    """The vendor could not take an action now (429, 5xx, 408, a timeout, no connection): the
    job is retried, not before ``retry_after`` seconds when the vendor said so."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, type=ErrorType.ACTION_UNAVAILABLE, retry_after=retry_after)
        self.status = status


class ActionInputInvalid(PermanentError):
    """An action's name or input is wrong: refused before any call to the vendor."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=ErrorType.ACTION_INPUT_INVALID)


class ConnectorNotAllowed(PermanentError):
    """The applet's manifest does not list the connector an action needs, or the project has
    no such connector."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=ErrorType.CONNECTOR_NOT_ALLOWED)


class ConnectorUnusable(PermanentError):
    """The connector an action needs could not be opened: a credential it refers to is not
    there (a secret not stored, a variable not set). The worker started without it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=ErrorType.CONNECTOR_UNUSABLE)


class ExpressionInvalid(GhappletsError, ValueError):
    """A runtime expression does not compile (bad jq, an undefined ``$variable``, a variable
    name that is not an identifier). The message is jq's own, positions in the expression."""

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


class BlueprintError(GhappletsError):
    """A blueprint error: the DSL's Problem Details (RFC 7807) description of what went wrong.

    ``type`` (a URI, usually one of the standard error types) and ``status`` are always set;
    ``instance`` is the JSON Pointer of the component that raised it (the engine sets it when it
    raises or escalates the error); ``title`` and ``detail`` are for people. The attributes stay
    writable so the engine can set ``instance`` on an error raised deeper down.
    """

    def __init__(
        self,
        type: str,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
    ) -> None:
        if not isinstance(type, str) or not type:
            raise ValueError(f"an error's type must be a non-empty string, not {type!r}")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError(f"an error's status must be an integer, not {status!r}")
        for name, value in (("title", title), ("detail", detail), ("instance", instance)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"an error's {name} must be a string, not {value!r}")
        super().__init__(type, status, title, detail, instance)
        self.type = type
        self.status = status
        self.title = title
        self.detail = detail
        self.instance = instance

    def __reduce__(self) -> tuple[Any, ...]:  # pickles with the fields as set now
        return (self.__class__, (self.type, self.status, self.title, self.detail, self.instance))

    def __str__(self) -> str:
        head = self.title or self.type.rsplit("/", 1)[-1] or self.type
        text = f"{head}: {self.detail}" if self.detail else head
        where = f" at {self.instance}" if self.instance else ""
        return f"{text} (status {self.status}, type {self.type}){where}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """The error as the DSL writes it: ``type`` and ``status`` always, each other property
        only when set (so ``instance`` is there once the error has been raised)."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        for name in ("title", "detail", "instance"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> BlueprintError:
        """The error a DSL error object describes (the inverse of :meth:`to_dict`).

        ``type`` and ``status`` are required; other members (RFC 7807 extensions) are ignored,
        as RFC 7807 asks of a consumer that does not know them. A wrong type is a ValueError.
        """
        if not isinstance(mapping, Mapping):
            raise ValueError(f"an error must be an object, not {mapping!r}")
        missing = [name for name in ("type", "status") if mapping.get(name) is None]
        if missing:
            raise ValueError(f"an error needs {' and '.join(missing)}: {dict(mapping)!r}")
        return cls(
            mapping["type"],
            mapping["status"],
            mapping.get("title"),
            mapping.get("detail"),
            mapping.get("instance"),
        )
