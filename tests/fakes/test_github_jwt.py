"""The GitHub fake checks App JWTs as GitHub does: each rule broken alone gets 401 with GitHub's
message, and no token is minted."""

from __future__ import annotations

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ghapplets.fakes.config import generate_app_key
from ghapplets.fakes.github_jwt import (
    EXP_INVALID,
    EXP_TOO_FAR,
    IAT_FUTURE,
    IAT_INVALID,
    NOT_DECODED,
    sign_app_jwt,
)
from ghapplets.fakes.runner import FakeSet
from tests.fakes.conftest import APP_ID, INSTALLATION

TOKENS = f"/app/installations/{INSTALLATION}/access_tokens"


def exchange(fakes: FakeSet, gh: httpx.Client, token: str) -> httpx.Response:
    return gh.post(TOKENS, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "issuer", [APP_ID, str(APP_ID), "Iv23liGhappletsFake01"], ids=["int", "str", "client-id"]
)
def test_a_jwt_from_the_app_key_mints_a_token(
    fakes: FakeSet, gh: httpx.Client, issuer: object
) -> None:
    token = sign_app_jwt(fakes.private_keys[APP_ID], issuer, now=fakes.clock.now())
    response = exchange(fakes, gh, token)
    assert response.status_code == 201, response.text
    assert fakes.github.exchanges(INSTALLATION) == 1


def _claims(fakes: FakeSet, **kw: object) -> str:
    return sign_app_jwt(fakes.private_keys[APP_ID], APP_ID, now=fakes.clock.now(), **kw)


CASES = {
    "iat in the future": ({"iat_offset": 30}, IAT_FUTURE),
    "iat 2 minutes old": ({"iat_offset": -120, "lifetime": 540}, IAT_INVALID),
    "iat not an integer": ({"extra": {"iat": "yesterday"}}, IAT_INVALID),
    "iat missing": ({"extra": {"iat": None}}, IAT_INVALID),
    "exp passed": ({"iat_offset": -60, "lifetime": 30}, EXP_INVALID),
    "exp missing": ({"extra": {"exp": None}}, EXP_INVALID),
    "exp 11 minutes ahead": ({"iat_offset": 0, "lifetime": 660}, EXP_TOO_FAR),
    "exp more than 10 minutes after iat": ({"iat_offset": -60, "lifetime": 620}, EXP_TOO_FAR),
    "unknown issuer": ({"extra": {"iss": 999}}, NOT_DECODED),
    "no issuer": ({"extra": {"iss": None}}, NOT_DECODED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_claim_rule_is_enforced_with_githubs_message(
    fakes: FakeSet, gh: httpx.Client, case: str
) -> None:
    kw, message = CASES[case]
    extra = kw.get("extra")
    if isinstance(extra, dict) and None in extra.values():  # a None claim: leave it out
        claims = {k: v for k, v in {**_payload(fakes), **extra}.items() if v is not None}
        token = jwt.PyJWS().encode(orjson.dumps(claims), fakes.private_keys[APP_ID], "RS256")
    else:
        token = _claims(fakes, **kw)
    response = exchange(fakes, gh, token)
    assert response.status_code == 401, case
    assert response.json() == {
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    assert fakes.github.exchanges(INSTALLATION) == 0


def _payload(fakes: FakeSet) -> dict[str, object]:
    now = int(fakes.clock.now())
    return {"iat": now - 60, "exp": now + 480, "iss": APP_ID}


def test_only_rs256_with_the_apps_own_key_is_accepted(fakes: FakeSet, gh: httpx.Client) -> None:
    payload = orjson.dumps(_payload(fakes))
    other_private, _ = generate_app_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    forged = {
        "another app's key": jwt.PyJWS().encode(payload, other_private, algorithm="RS256"),
        "RS512": jwt.PyJWS().encode(payload, fakes.private_keys[APP_ID], algorithm="RS512"),
        "HS256": jwt.PyJWS().encode(payload, "shared-secret-shared-secret-32by", algorithm="HS256"),
        "ES256": jwt.PyJWS().encode(payload, ec_key, algorithm="ES256"),
        "not a JWT": "ghs_notajwtatall",
        "unsigned": jwt.PyJWS().encode(payload, None, algorithm="none"),
    }
    for name, token in forged.items():
        response = exchange(fakes, gh, token)
        assert (response.status_code, response.json()["message"]) == (401, NOT_DECODED), name
    assert gh.post(TOKENS).json()["message"] == NOT_DECODED  # no Authorization at all
    assert fakes.github.exchanges(INSTALLATION) == 0


def test_the_fakes_clock_decides_what_expired(fakes: FakeSet, gh: httpx.Client) -> None:
    token = _claims(fakes)  # exp 8 minutes ahead
    fakes.clock.advance(9 * 60)
    assert exchange(fakes, gh, token).json()["message"] == EXP_INVALID
    assert exchange(fakes, gh, _claims(fakes)).status_code == 201  # minted at the new time


def test_an_installation_token_is_not_a_jwt(fakes: FakeSet, gh: httpx.Client) -> None:
    token = exchange(fakes, gh, _claims(fakes)).json()["token"]
    response = gh.get("/app", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["message"]) == (401, NOT_DECODED)
