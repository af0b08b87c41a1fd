"""Invoices as documents: plain text, CSV, JSON and a PDF a customer can be sent. Pure: values in,
text or bytes out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from decimal import Decimal

from callmeter.billing.invoices import InvoiceView
from callmeter.billing.money import format_usd

SELLER = "callmeter"


def _title(view: InvoiceView) -> str:
    number = view.number or "DRAFT"
    return f"Invoice {number} for user {view.user_id}, {view.month} ({view.status.lower()})"


def _shown(quantity: Decimal) -> str:
    """A quantity for people: 1, 11.5 (machine formats keep the stored four places)."""
    return format(quantity.normalize(), "f")


def as_text(views: Sequence[InvoiceView]) -> str:
    out = []
    for view in views:
        out.append(_title(view))
        for line in view.lines:
            out.append(
                f"  {line.position:>2}. {line.description:<62} {_shown(line.quantity):>12} x "
                f"{format_usd(line.unit_price_usd, 4):>9} = {format_usd(line.amount_usd):>10}"
            )
        out.append(f"  {'Total':<84} {format_usd(view.total_usd):>10}")
        if view.stripe_invoice_id:
            out.append(f"  Stripe invoice {view.stripe_invoice_id}")
        out.append("")
    return "\n".join(out)


def as_csv(views: Sequence[InvoiceView]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "invoice",
            "user_id",
            "month",
            "status",
            "position",
            "description",
            "quantity",
            "unit_price_usd",
            "amount_usd",
        ]
    )
    for view in views:
        for line in view.lines:
            writer.writerow(
                [
                    view.number or "",
                    view.user_id,
                    view.month,
                    view.status,
                    line.position,
                    line.description,
                    line.quantity,
                    line.unit_price_usd,
                    line.amount_usd,
                ]
            )
    return buffer.getvalue()


def as_json(views: Sequence[InvoiceView]) -> str:
    """Amounts as strings, exactly as stored (as GraphQL's `Decimal` does)."""
    return json.dumps(
        [
            {
                "number": view.number,
                "user_id": view.user_id,
                "month": str(view.month),
                "status": str(view.status),
                "total_usd": str(view.total_usd),
                "stripe_invoice_id": view.stripe_invoice_id,
                "lines": [
                    {
                        "position": line.position,
                        "description": line.description,
                        "quantity": str(line.quantity),
                        "unit_price_usd": str(line.unit_price_usd),
                        "amount_usd": str(line.amount_usd),
                    }
                    for line in view.lines
                ],
            }
            for view in views
        ],
        indent=2,
    )


def as_pdf(views: Sequence[InvoiceView]) -> bytes:
    from fpdf import FPDF  # imported here: fpdf2 is slow to import and only PDFs need it

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    for view in views:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 10, "Invoice", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for label, value in (
            ("Number", view.number or "Draft (not final)"),
            ("Period", str(view.month)),
            ("Customer", f"User {view.user_id}"),
            ("Status", view.status.title()),
            ("From", SELLER),
        ):
            pdf.cell(35, 7, label)
            pdf.cell(0, 7, value, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        widths = (10, 100, 25, 25, 30)
        pdf.set_font("Helvetica", "B", 10)
        for width, heading in zip(
            widths, ("#", "Description", "Quantity", "Unit price", "Amount"), strict=True
        ):
            pdf.cell(width, 8, heading, border="B", align="L" if heading == "Description" else "R")
        pdf.ln()
        pdf.set_font("Helvetica", "", 9)
        for line in view.lines:
            cells = (
                str(line.position),
                _latin1(line.description),
                _shown(line.quantity),
                format_usd(line.unit_price_usd, 4),
                format_usd(line.amount_usd),
            )
            for width, cell in zip(widths, cells, strict=True):
                pdf.cell(width, 7, cell, align="L" if width == 100 else "R")
            pdf.ln()
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(sum(widths[:-1]), 9, "Total (USD)", border="T", align="R")
        pdf.cell(widths[-1], 9, format_usd(view.total_usd), border="T", align="R")
        pdf.ln()
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    """The core PDF fonts are Latin-1: keep what fits (the en dash of tier ranges becomes '-')."""
    return text.replace("–", "-").encode("latin-1", "replace").decode("latin-1")


RENDERERS: dict[str, Callable[[Sequence[InvoiceView]], str | bytes]] = {
    "text": as_text,
    "csv": as_csv,
    "json": as_json,
    "pdf": as_pdf,
}
FORMATS = tuple(RENDERERS)


def render(views: Sequence[InvoiceView], fmt: str) -> str | bytes:
    return RENDERERS[fmt](views)
