"""GitHub App JWTs: the checks the GitHub fake makes, and minting one for tests (sans-I/O).

:func:`verify_app_jwt` checks a JWT the way GitHub does, with PyJWT for decoding and the RS256
signature, and the claim rules below against the fake's clock (``now``), each refusal carrying
GitHub's own message (all answered 401):

* it decodes, its header says ``alg: RS256``, its ``iss`` names a configured App (the App id,
  as a number or a string, or the App's client id) and the signature verifies with that App's
  public key; else "A JSON web token could not be decoded";
* ``iat`` and ``exp`` are integers; else "'Issued at' claim ('iat') must be an Integer
  representing the time that the assertion was issued" / "'Expiration time' claim ('exp') must
  be a numeric value representing the future time at which the assertion expires";
* ``iat`` is not in the future (beyond ``leeway`` seconds of clock skew): "'Issued at' claim
  ('iat') must be an Integer representing a time in the past";
* ``exp`` is in the future; else the ``exp`` message above;
* ``exp`` is at most 10 minutes ahead of now (plus ``leeway``) and at most 10 minutes after
  ``iat``: "'Expiration time' claim ('exp') is too far in the future";
* ``iat`` is at most ``max_age`` (60) seconds (plus ``leeway``) in the past, as the issue for
  the fakes asks (same message as a non-integer ``iat``). GitHub documents 60 s as the
  back-dating to use and may itself accept an older ``iat`` while ``exp`` is valid: the fake is
  the stricter, so a client that signs a fresh JWT for each exchange passes both.

The checks run in that order; the first broken rule gives the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

MAX_LIFETIME = 600  # seconds: GitHub's 10 minutes

NOT_DECODED = "A JSON web token could not be decoded"
IAT_INVALID = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
IAT_FUTURE = "'Issued at' claim ('iat') must be an Integer representing a time in the past"
EXP_INVALID = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"


class JwtRejected(Exception):
    """The JWT is refused; ``str()`` is GitHub's message."""


@dataclass(frozen=True, slots=True)
class AppKey:
    """What the fake knows of an App to check its JWTs."""

    app_id: int
    client_id: str
    public_key: RSAPublicKey

    @classmethod
    def from_pem(cls, app_id: int, client_id: str, pem: str) -> AppKey:
        key = load_pem_public_key(pem.encode())
        if not isinstance(key, RSAPublicKey):
            raise ValueError(f"app {app_id}: the public key is not an RSA key")
        return cls(app_id, client_id, key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def verify_app_jwt(
    token: str,
    apps: Mapping[str, AppKey],
    *,
    now: float,
    max_age: float = 60,
    leeway: float = 5,
) -> AppKey:
    """The App whose JWT ``token`` is, or :class:`JwtRejected` with GitHub's message.

    ``apps`` maps every accepted ``iss`` (the App id as a string, and the client id) to a key.
    """
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise JwtRejected(NOT_DECODED) from None
    if header.get("alg") != "RS256":
        raise JwtRejected(NOT_DECODED)
    iss = claims.get("iss")
    app = apps.get(str(iss)) if _is_int(iss) or isinstance(iss, str) else None
    if app is None:
        raise JwtRejected(NOT_DECODED)
    try:
        jwt.decode(
            token,
            key=app.public_key,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise JwtRejected(NOT_DECODED) from None
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise JwtRejected(IAT_INVALID)
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise JwtRejected(EXP_INVALID)
    if iat > now + leeway:
        raise JwtRejected(IAT_FUTURE)
    if exp <= now:
        raise JwtRejected(EXP_INVALID)
    if exp > now + MAX_LIFETIME + leeway or exp - iat > MAX_LIFETIME:
        raise JwtRejected(EXP_TOO_FAR)
    if iat < now - max_age - leeway:
        raise JwtRejected(IAT_INVALID)
    return app


def sign_app_jwt(
    private_key_pem: str,
    issuer: int | str,
    *,
    now: float,
    iat_offset: int = -60,
    lifetime: int = 540,
    algorithm: str = "RS256",
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A JWT as a GitHub App client makes one: ``iat`` = now + ``iat_offset`` (GitHub's advice:
    60 s in the past), ``exp`` = ``iat`` + ``lifetime`` (at most 600). For tests and examples;
    the arguments let a test break one rule at a time."""
    iat = int(now) + iat_offset
    claims: dict[str, Any] = {"iat": iat, "exp": iat + lifetime, "iss": issuer, **(extra or {})}
    # PyJWS signs the claims as given: jwt.encode refuses an integer iss, which GitHub takes
    return jwt.PyJWS().encode(orjson.dumps(claims), private_key_pem, algorithm=algorithm)
