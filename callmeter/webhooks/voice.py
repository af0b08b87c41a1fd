"""`POST /webhooks/twilio/voice?agent_id=N`: the call gate as a number's Voice URL.

Twilio asks it, signed like status callbacks, what to do with an incoming call. Allowed: TwiML that
redirects Twilio to the agent's own `voiceUrl`, with a slot held for the call (its `CallSid`: the
call's first status callback takes the slot over). Not allowed: `<Reject reason="busy"/>`.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from callmeter.errors import BadInputError, DatabaseUnavailableError, NotFoundError
from callmeter.inputs import parse_id
from callmeter.resolvers import spend
from callmeter.webhooks.routes import signed_form

log = logging.getLogger("callmeter.webhooks")

VOICE_PATH = "/webhooks/twilio/voice"
REJECT_BUSY = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'


def redirect_to(url: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<Response><Redirect method="POST">{escape(url)}</Redirect></Response>'
    )


def twiml(document: str) -> Response:
    return Response(document, media_type="text/xml")


async def twilio_voice(request: Request) -> Response:
    form = await signed_form(request)
    if form is None:
        log.warning("rejected a voice request with a missing or invalid X-Twilio-Signature")
        return PlainTextResponse("invalid or missing X-Twilio-Signature\n", status_code=403)
    call_sid = form.get("CallSid", "")
    try:
        agent_id = parse_id(request.query_params.get("agent_id", ""), "agent_id")
        if not call_sid or len(call_sid) > 64 or not call_sid.isascii() or not call_sid.isprintable():
            raise BadInputError("CallSid is missing or not a Twilio call SID")
        owner, decision = await spend.authorize_call(
            request.app.state.services, None, agent_id=agent_id, call_sid=call_sid
        )
    except NotFoundError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=404)
    except BadInputError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    except DatabaseUnavailableError as exc:
        log.error("call %s: voice gate unavailable: %s", call_sid, exc, extra={"call_sid": call_sid})
        return PlainTextResponse("database unavailable, retry later\n", status_code=503)
    allowance = decision.allowance
    if not allowance.allowed:
        log.info(
            "call %s: rejected by the gate (%s)", call_sid, allowance.reason, extra={"call_sid": call_sid}
        )
        return twiml(REJECT_BUSY)
    assert owner.voice_url is not None  # checked before a slot was held
    return twiml(redirect_to(owner.voice_url))
