"""The HTTP ceiling of callback ingest: a bare Starlette route of the same shape as the service's
(`POST /webhooks/twilio/status`: read the body, parse the form, check the Twilio signature over the
URL with the same code, answer 200) and no database at all. Served by uvicorn as `serve` is (one
worker, no access log); bench/ingest.py measures it in the same run as the service.

    python -m uvicorn bench.bare:app --port 18800 --no-access-log
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict, Secret
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from callmeter.webhooks.signature import is_signed_by_twilio

TOKENS = (Secret(os.environ.get("TWILIO_AUTH_TOKEN", "bench-twilio-token-0123456789abcdef")),)


async def status_callback(request: Request) -> Response:
    body = await request.body()
    try:
        form = ImmutableMultiDict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        form = ImmutableMultiDict()
    signed = is_signed_by_twilio(
        url=str(request.url),
        form=form,
        signature=request.headers.get("x-twilio-signature"),
        settings_header=request.headers.get("x-twilio-webhooks-signature-settings"),
        tokens=TOKENS,
    )
    if not signed:
        return PlainTextResponse("invalid or missing X-Twilio-Signature\n", status_code=403)
    return Response(status_code=200)


app = Starlette(routes=[Route("/webhooks/twilio/status", status_callback, methods=["POST"])])
