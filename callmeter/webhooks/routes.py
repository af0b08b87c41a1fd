"""`POST /webhooks/twilio/status`: Twilio's call status callbacks.

The order of checks is the order of cost: size (413, by the app's body limit for `/webhooks/`),
signature (403, before any database work), shape (400); then the event is recorded (with the
callbacks that arrived with it, in one transaction: db/group_commit.py), and only after that commits
does Twilio get its 200. An event that matches no agent is kept and
answered 202. A database that cannot be reached is a 503, so Twilio delivers the event again later.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from callmeter.billing.money import format_usd
from callmeter.call_lifecycle import CallEventKind, CallStatus
from callmeter.db.recording import RecordOutcome
from callmeter.errors import BadInputError, DatabaseUnavailableError
from callmeter.inputs import parse_id
from callmeter.metrics import CALLBACKS, RECORDING_SECONDS
from callmeter.webhooks.parsing import parse_status_callback
from callmeter.webhooks.signature import is_signed_by_twilio, public_url

log = logging.getLogger("callmeter.webhooks")

CALLBACK_PATH = "/webhooks/twilio/status"


def count_refused_body(path: str) -> None:
    """Told by the app's body limit of each request it refused."""
    if path == CALLBACK_PATH:
        CALLBACKS.labels("too_large").inc()


async def twilio_status_callback(request: Request) -> Response:
    settings = request.app.state.services.settings
    form = await signed_form(request)
    if form is None:
        log.warning("rejected a status callback with a missing or invalid X-Twilio-Signature")
        return counted(
            "bad_signature", PlainTextResponse("invalid or missing X-Twilio-Signature\n", status_code=403)
        )
    try:
        event = parse_status_callback(form, received_at=datetime.now(UTC))
        agent_id = _agent_id(request.query_params.get("agent_id"))
        authorization_id = _authorization_id(request.query_params.get("authorization_id"))
    except BadInputError as exc:
        return counted("bad_request", PlainTextResponse(f"{exc}\n", status_code=400))
    started = time.perf_counter()
    try:
        services = request.app.state.services
        outcome = await services.recorder.record(
            event=event,
            form=form,
            agent_id=agent_id,
            default_plan=settings.default_plan,
            default_calendar=settings.default_calendar,
            authorization_id=authorization_id,
        )
    except DatabaseUnavailableError as exc:
        log.error(
            "call %s: not recorded, database unavailable: %s",
            event.call_sid,
            exc,
            extra={"call_sid": event.call_sid},
        )
        return counted(
            "unavailable", PlainTextResponse("database unavailable, retry later\n", status_code=503)
        )
    RECORDING_SECONDS.observe(time.perf_counter() - started)
    _log_outcome(event.call_sid, event.call_status, outcome)
    if not outcome.stored:
        return counted("duplicate", Response(status_code=202 if not outcome.attributed else 200))
    if not outcome.attributed:
        return counted("unattributed", Response(status_code=202))
    return counted("recorded", Response(status_code=200))


async def signed_form(request: Request) -> ImmutableMultiDict[str, str] | None:
    """The request's form if Twilio signed it (over the public URL), else None."""
    settings = request.app.state.services.settings
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        pairs = []
    form = ImmutableMultiDict(pairs)
    signed = is_signed_by_twilio(
        url=public_url(request, settings.public_base_url),
        form=form,
        signature=request.headers.get("x-twilio-signature"),
        settings_header=request.headers.get("x-twilio-webhooks-signature-settings"),
        tokens=settings.twilio_auth_tokens,
    )
    return form if signed else None


def counted(outcome: str, response: Response) -> Response:
    CALLBACKS.labels(outcome).inc()
    return response


def _agent_id(value: str | None) -> int | None:
    return None if value is None else parse_id(value, "agent_id")


def _authorization_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 40 or not value.isascii() or not value.isprintable():
        raise BadInputError("authorization_id must be the id the gate gave (at most 40 characters)")
    return value


def _log_outcome(call_sid: str, status: str, outcome: RecordOutcome) -> None:
    log = logging.LoggerAdapter(logging.getLogger("callmeter.webhooks"), {"call_sid": call_sid})
    if not outcome.stored:
        log.info("call %s: duplicate %s event ignored", call_sid, status)
    elif not outcome.attributed:
        log.warning("call %s: %s event matches no agent; kept for an admin", call_sid, status)
    elif outcome.call is None:
        log.info("call %s: late %s event stored, call unchanged", call_sid, status)
    elif outcome.change is CallEventKind.STARTED:
        log.info("call %s: Call tracking started for user %s", call_sid, outcome.call.user_id)
    elif outcome.change is CallEventKind.ENDED and outcome.call.status == CallStatus.COMPLETED:
        log.info(
            "call %s: Call ended: %ss, Cost: %s",
            call_sid,
            outcome.call.duration_seconds,
            format_usd(outcome.call.cost_usd, places=4),
        )
    elif outcome.change is CallEventKind.ENDED:
        log.info("call %s: Call ended without being answered (%s)", call_sid, outcome.call.twilio_status)
