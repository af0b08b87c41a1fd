"""Pushing a finalized invoice to Stripe with the official `stripe` library.

One Stripe customer per user (kept in `stripe_customers`), one invoice item per line in cents, and
an idempotency key derived from the invoice number on every request, so a retried push (after a
timeout, a crash, or by hand) never bills twice: Stripe answers a repeated key with the first result.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import stripe

from callmeter.db import invoices
from callmeter.db.connection import Database
from callmeter.errors import BadInputError, CallmeterError
from callmeter.resolvers.invoices import InvoiceView
from callmeter.settings import Settings


class StripeError(CallmeterError):
    code = "STRIPE_ERROR"
    http_status = 502


def cents(amount: Decimal) -> int:
    value = amount * 100
    if value != value.to_integral_value():
        raise BadInputError(f"{amount} is not a whole number of cents")
    return int(value)


def stripe_client(settings: Settings) -> stripe.StripeClient:
    if settings.stripe_api_key is None:
        raise BadInputError("STRIPE_API_KEY is not set")
    addresses = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(str(settings.stripe_api_key), base_addresses=addresses, max_network_retries=2)


def _push(client: stripe.StripeClient, view: InvoiceView, customer_id: str | None) -> tuple[str, str]:
    key = f"callmeter-{view.number}"
    if customer_id is None:
        customer = client.v1.customers.create(
            params={
                "description": f"callmeter user {view.user_id}",
                "metadata": {"callmeter_user_id": str(view.user_id)},
            },
            options={"idempotency_key": f"callmeter-customer-{view.user_id}"},
        )
        customer_id = customer.id
    invoice = client.v1.invoices.create(
        params={
            "customer": customer_id,
            "currency": "usd",
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "pending_invoice_items_behavior": "exclude",
            "description": f"AI voice agent usage {view.month} ({view.number})",
            "metadata": {"callmeter_invoice": view.number or "", "month": view.month},
        },
        options={"idempotency_key": f"{key}-invoice"},
    )
    for line in view.lines:
        client.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "invoice": invoice.id,
                "currency": "usd",
                "amount": cents(line.amount_usd),
                "description": line.description,
            },
            options={"idempotency_key": f"{key}-line-{line.position}"},
        )
    client.v1.invoices.finalize_invoice(invoice.id, options={"idempotency_key": f"{key}-finalize"})
    return customer_id, invoice.id


async def push_invoice(db: Database, settings: Settings, view: InvoiceView) -> str:
    """The Stripe invoice id of a finalized invoice, pushing it first if it was not pushed yet."""
    if view.status != "FINALIZED" or view.id is None:
        raise BadInputError(f"the {view.month} invoice of user {view.user_id} is not finalized")
    if view.stripe_invoice_id:
        return view.stripe_invoice_id
    async with db.connection() as conn:
        customer_id = await invoices.fetch_stripe_customer(conn, user_id=view.user_id)
    try:
        customer_id, stripe_id = await asyncio.to_thread(_push, stripe_client(settings), view, customer_id)
    except stripe.StripeError as exc:
        raise StripeError(f"Stripe refused invoice {view.number}: {exc.user_message or exc}") from None
    async with db.transaction() as conn:
        await invoices.save_stripe_customer(conn, user_id=view.user_id, customer_id=customer_id)
        await invoices.set_stripe_invoice_id(conn, invoice_id=view.id, stripe_invoice_id=stripe_id)
    return stripe_id
