"""The domain exceptions, mapped once at the edge to GraphQL `extensions.code` and HTTP statuses.

    CallmeterError
    ├── ConfigError            bad configuration; the CLI prints it and exits 2
    ├── UnauthenticatedError   no, expired or badly signed token       UNAUTHENTICATED / 401
    ├── ForbiddenError         a valid viewer asking for another user  FORBIDDEN / 403
    ├── BadInputError          input that breaks the contract          BAD_USER_INPUT / 400
    ├── NotFoundError          a named thing that does not exist       NOT_FOUND / 404
    ├── ConflictError          an idempotency key reused for another thing  CONFLICT / 409
    └── DatabaseUnavailableError  the database cannot be reached       (callbacks answer 503)

graphql-core copies an exception's `extensions` dict onto the GraphQL error it wraps, so resolvers
simply raise these.
"""

from __future__ import annotations

import os


class CallmeterError(Exception):
    code = "INTERNAL_SERVER_ERROR"
    http_status = 500

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self.code}


class ConfigError(CallmeterError):
    pass


class UnauthenticatedError(CallmeterError):
    code, http_status = "UNAUTHENTICATED", 401


class ForbiddenError(CallmeterError):
    code, http_status = "FORBIDDEN", 403


class BadInputError(CallmeterError):
    code, http_status = "BAD_USER_INPUT", 400


class NotFoundError(CallmeterError):
    code, http_status = "NOT_FOUND", 404


class ConflictError(CallmeterError):
    code, http_status = "CONFLICT", 409


class DatabaseUnavailableError(CallmeterError):
    code, http_status = "SERVICE_UNAVAILABLE", 503


def unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words (`connection refused`, `timed out`), from the innermost
    operating-system error under the library's own."""
    reason, cause, depth = str(exc) or type(exc).__name__, exc, 0
    while cause is not None and depth < 10:
        if isinstance(cause, TimeoutError):
            reason = "timed out"
        elif isinstance(cause, OSError) and cause.errno and cause.errno > 0:
            reason = os.strerror(cause.errno).lower()
        elif isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror.lower()
        cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return reason
