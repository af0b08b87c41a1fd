"""Pushing a finalized invoice to Stripe: one Stripe customer per user, kept as soon as it is made
(a retry days later must not make a second one), and the Stripe invoice id stored once pushed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from callmeter.billing.invoices import InvoiceStatus, InvoiceView
from callmeter.db import invoices
from callmeter.errors import BadInputError
from callmeter.outbound import stripe
from callmeter.resolvers.services import Services


async def push_invoice(services: Services, view: InvoiceView) -> InvoiceView:
    """The finalized invoice with its Stripe invoice id, pushing it first if it was not pushed yet."""
    if view.status is not InvoiceStatus.FINALIZED or view.id is None:
        raise BadInputError(f"the {view.month} invoice of user {view.user_id} is not finalized")
    if view.stripe_invoice_id:
        return view
    client = stripe.stripe_client(services.settings)
    async with services.db.connection() as conn:
        customer_id = await invoices.fetch_stripe_customer(conn, user_id=view.user_id)
    if customer_id is None:
        customer_id = await asyncio.to_thread(
            stripe.stripe_call, view.number, lambda: stripe.create_customer(client, view.user_id)
        )
        async with services.db.transaction() as conn:
            await invoices.save_stripe_customer(conn, user_id=view.user_id, customer_id=customer_id)
    stripe_id = await asyncio.to_thread(
        stripe.stripe_call, view.number, lambda: stripe.push_invoice(client, view, customer_id)
    )
    async with services.db.transaction() as conn:
        await invoices.set_stripe_invoice_id(conn, invoice_id=view.id, stripe_invoice_id=stripe_id)
    return replace(view, stripe_invoice_id=stripe_id)
