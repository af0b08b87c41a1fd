"""The REST routes (the original dashboard's, and the invoice PDF) and their OpenAPI description.
Errors are rendered by the app's handlers, as `{"error": ..., "code": ...}`."""

from __future__ import annotations

from starlette.routing import Route

from callmeter.rest.calls import authorize
from callmeter.rest.invoices import invoice_pdf
from callmeter.rest.openapi import openapi
from callmeter.rest.usage import call_history, current_usage, usage_history
from callmeter.rest.usage_events import usage_events

routes = [
    Route("/api/usage/current", current_usage, methods=["GET"]),
    Route("/api/usage/history", usage_history, methods=["GET"]),
    Route("/api/usage/calls", call_history, methods=["GET"]),
    Route("/api/invoices/{month}.pdf", invoice_pdf, methods=["GET"]),
    Route("/api/calls/authorize", authorize, methods=["POST"]),
    Route("/api/usage/events", usage_events, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
