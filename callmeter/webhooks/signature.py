"""Twilio request signatures: HMAC-SHA1 (legacy) or HMAC-SHA256 over the public URL and the form.

The URL must be the one Twilio called. Behind a TLS-terminating proxy the request's own URL has the
wrong scheme or host, so with `PUBLIC_BASE_URL` set the URL is rebuilt from it. Several tokens may be
configured during a rotation; a signature made with any of them is accepted. The comparison is
constant-time (twilio's own `compare`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import ImmutableMultiDict, Secret
from starlette.requests import Request
from twilio.request_validator import RequestValidator, get_signature_algorithm


def public_url(request: Request, public_base_url: str | None) -> str:
    if not public_base_url:
        return str(request.url)
    query = request.url.query
    return public_base_url + request.url.path + (f"?{query}" if query else "")


def is_signed_by_twilio(
    *,
    url: str,
    form: ImmutableMultiDict[str, str],
    signature: str | None,
    settings_header: str | None,
    tokens: Sequence[Secret],
) -> bool:
    if not signature:
        return False
    algorithm = get_signature_algorithm(settings_header)
    return any(
        RequestValidator(str(token)).validate(url, form, signature, algorithm=algorithm) for token in tokens
    )
