"""Bearer tokens: HS256 JWTs signed with `JWT_SECRET`, turned into the `Viewer` every read is scoped by.

The algorithm is pinned to HS256 (so `alg: none` and algorithm-confusion tokens are refused), `exp`
is required, and `iss`/`aud` are checked when configured. `sub` is the user's id, a positive integer
given as a string or a number. A token's signature is checked once per process (an LRU of valid
tokens); its expiry on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

from callmeter.errors import UnauthenticatedError
from callmeter.inputs import MAX_ID, digits
from callmeter.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Viewer:
    user_id: int
    is_admin: bool = False
    expires_at: float | None = field(default=None, compare=False)  # the token's `exp`


def issue_token(
    settings: Settings, *, user_id: int, admin: bool = False, ttl: timedelta = timedelta(hours=24)
) -> str:
    claims: dict[str, object] = {
        "sub": str(user_id),
        "exp": datetime.now(UTC) + ttl,
        "iat": datetime.now(UTC),
    }
    if admin:
        claims["role"] = "admin"
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, str(settings.jwt_secret), algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Viewer:
    viewer = _verified(token, str(settings.jwt_secret), settings.jwt_issuer, settings.jwt_audience)
    assert viewer.expires_at is not None
    if viewer.expires_at <= time.time():  # checked on every use: a cached token still expires on time
        raise UnauthenticatedError("token expired")
    return viewer


@lru_cache(maxsize=4096)
def _verified(token: str, secret: str, issuer: str | None, audience: str | None) -> Viewer:
    """A valid token's viewer and expiry. Dashboards send one token many times: its signature is
    checked once (invalid tokens raise, and exceptions are never cached)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "sub"], "verify_sub": False, "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise UnauthenticatedError("token expired") from None
    except jwt.PyJWTError as exc:
        raise UnauthenticatedError(f"invalid token: {exc}") from None
    subject = claims["sub"]
    if isinstance(subject, bool) or not isinstance(subject, int | str):
        raise UnauthenticatedError("invalid token: sub must be a user id")
    user_id = digits(str(subject), max_digits=19)
    if user_id is None or not 0 < user_id <= MAX_ID:
        raise UnauthenticatedError("invalid token: sub must be a positive integer user id")
    is_admin = claims.get("role") == "admin"
    return Viewer(user_id=user_id, is_admin=is_admin, expires_at=float(claims["exp"]))


def viewer_from_authorization(settings: Settings, header: str | None) -> Viewer:
    """The viewer named by an `Authorization: Bearer <JWT>` header value."""
    if not header:
        raise UnauthenticatedError("missing Authorization: Bearer token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("Authorization must be 'Bearer <token>'")
    return verify_token(settings, token.strip())
