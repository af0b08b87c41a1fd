"""Stripe's API through the official `stripe` library: a customer, and an invoice from our lines.

One invoice item per non-zero line in cents, and an idempotency key derived from the invoice number
on every request, so a retried push (after a timeout, a crash, or by hand) never bills twice: Stripe
answers a repeated key with the first result, for 24 hours (retry a failed push within a day).
Blocking calls: run them on a thread. Failures are `StripeError`, one line each.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import stripe

from callmeter.billing.invoices import InvoiceView
from callmeter.errors import BadInputError, CallmeterError
from callmeter.settings import Settings

T = TypeVar("T")


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


def create_customer(client: stripe.StripeClient, user_id: int) -> str:
    customer = client.v1.customers.create(
        params={"description": f"callmeter user {user_id}", "metadata": {"callmeter_user_id": str(user_id)}},
        options={"idempotency_key": f"callmeter-customer-{user_id}"},
    )
    return str(customer.id)


def push_invoice(client: stripe.StripeClient, view: InvoiceView, customer_id: str) -> str:
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


def stripe_call(number: str | None, call: Callable[[], T]) -> T:
    """Run one of the calls above, its failures as one-line `StripeError`s about invoice `number`."""
    try:
        return call()
    except stripe.APIConnectionError as exc:
        reason = " ".join(str(exc.__cause__ or "no answer").split())
        raise StripeError(f"could not reach Stripe for invoice {number}: {reason}") from None
    except stripe.StripeError as exc:
        message = " ".join(str(exc.user_message or exc).split())  # one line, whatever Stripe wrote
        raise StripeError(f"Stripe refused invoice {number}: {message}") from None
