"""`GET /api/invoices/{month}.pdf`: a month's invoice as a PDF (a live draft until finalized)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from callmeter.billing.documents import as_pdf
from callmeter.months import Month
from callmeter.resolvers.invoices import invoice_for
from callmeter.rest.shapes import viewer_and_user


async def invoice_pdf(request: Request) -> Response:
    services, _, user_id = viewer_and_user(request)
    view = await invoice_for(services, user_id=user_id, month=Month.parse(request.path_params["month"]))
    name = f"invoice-{view.number or 'draft'}-{view.month}.pdf"
    return Response(
        as_pdf([view]),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
