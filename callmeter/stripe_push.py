"""Pushing a finalized invoice to Stripe with the official `stripe` library.

One Stripe customer per user (kept in `stripe_customers` as soon as it is made), one invoice item per
non-zero line in cents, and an idempotency key derived from the invoice number on every request, so a
retried push (after a timeout, a crash, or by hand) never bills twice: Stripe answers a repeated key
with the first result, for 24 hours (retry a failed push within a day).
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


def _create_customer(client: stripe.StripeClient, user_id: int) -> str:
    customer = client.v1.customers.create(
        params={"description": f"callmeter user {user_id}", "metadata": {"callmeter_user_id": str(user_id)}},
        options={"idempotency_key": f"callmeter-customer-{user_id}"},
    )
    return str(customer.id)


def _push(client: stripe.StripeClient, view: InvoiceView, customer_id: str) -> str:
    key = f"callmeter-{view.number}"
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
        if not line.amount_usd:
            continue  # e.g. no usage on an invoice that carries only an adjustment
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
    return str(invoice.id)


async def push_invoice(db: Database, settings: Settings, view: InvoiceView) -> str:
    """The Stripe invoice id of a finalized invoice, pushing it first if it was not pushed yet."""
    if view.status != "FINALIZED" or view.id is None:
        raise BadInputError(f"the {view.month} invoice of user {view.user_id} is not finalized")
    if view.stripe_invoice_id:
        return view.stripe_invoice_id
    client = stripe_client(settings)
    async with db.connection() as conn:
        customer_id = await invoices.fetch_stripe_customer(conn, user_id=view.user_id)
    try:
        if customer_id is None:  # kept at once: a retry days later must not make a second customer
            customer_id = await asyncio.to_thread(_create_customer, client, view.user_id)
            async with db.transaction() as conn:
                await invoices.save_stripe_customer(conn, user_id=view.user_id, customer_id=customer_id)
        stripe_id = await asyncio.to_thread(_push, client, view, customer_id)
    except stripe.APIConnectionError as exc:
        reason = " ".join(str(exc.__cause__ or "no answer").split())
        raise StripeError(f"could not reach Stripe for invoice {view.number}: {reason}") from None
    except stripe.StripeError as exc:
        message = " ".join(str(exc.user_message or exc).split())  # one line, whatever Stripe wrote
        raise StripeError(f"Stripe refused invoice {view.number}: {message}") from None
    async with db.transaction() as conn:
        await invoices.set_stripe_invoice_id(conn, invoice_id=view.id, stripe_invoice_id=stripe_id)
    return stripe_id
