"""Structured logs: one JSON object a line, with the call SID as its own field on every line about a call."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JSONLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_sid = getattr(record, "call_sid", None)
        if call_sid:
            line["call_sid"] = call_sid
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        # Readable UTF-8, but never a character that log shippers (and str.splitlines) take for a
        # line break: JSON escapes the ASCII ones, these three it leaves raw.
        return json.dumps(line, ensure_ascii=False).translate(_LINE_BREAKS)


_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


# For uvicorn (`log_config`): its own lines (start-up, shutdown, errors) in the same JSON format.
UVICORN_LOG_CONFIG: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "callmeter.logs.JSONLineFormatter"}},
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
    },
}


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # it logs every request's headers
