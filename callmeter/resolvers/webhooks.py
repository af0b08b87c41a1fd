"""Outgoing webhook endpoints and their deliveries (admin only): creating one (its `whsec_` secret is
shown once), listing, deleting, and sending a delivery again."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from callmeter.db import deliveries as deliveries_db
from callmeter.db import endpoints
from callmeter.errors import BadInputError, NotFoundError
from callmeter.inputs import is_one_line
from callmeter.notifications import EventType
from callmeter.outbound.webhooks import check_address, check_url
from callmeter.resolvers.services import Services
from callmeter.rows import DeliveryRow, EndpointRow
from callmeter.sealing import seal

MAX_DELIVERIES_PAGE = 500


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: EndpointRow
    secret: str  # shown once


def check_events(events: Sequence[str]) -> list[str]:
    known = {str(kind) for kind in EventType}
    unknown = [name for name in events if name not in known]
    if not events or unknown:
        shown = f"unknown event type {unknown[0][:40]!r}; " if unknown else ""
        raise BadInputError(f"{shown}events must be some of: {', '.join(sorted(known))}")
    return sorted(set(events))


async def create_endpoint(
    services: Services, *, url: str, events: Sequence[str], description: str | None
) -> CreatedEndpoint:
    allow_http = services.settings.webhooks_allow_http
    check_url(url, allow_http=allow_http)
    wanted = check_events(events)
    if description is not None and (len(description) > 500 or not is_one_line(description)):
        raise BadInputError("description must be one line of at most 500 characters")
    await check_address(url, allow_http=allow_http)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sealed = seal(str(services.settings.jwt_secret), secret)
    async with services.db.transaction() as conn:
        row = await endpoints.insert_endpoint(
            conn, url=url, events=wanted, description=description, sealed_secret=sealed, now=datetime.now(UTC)
        )
    return CreatedEndpoint(row, secret)


async def list_endpoints(services: Services) -> list[EndpointRow]:
    async with services.db.connection() as conn:
        return await endpoints.list_endpoints(conn)


async def delete_endpoint(services: Services, *, endpoint_id: int) -> bool:
    async with services.db.transaction() as conn:
        return await endpoints.delete_endpoint(conn, endpoint_id=endpoint_id, now=datetime.now(UTC))


async def deliveries(services: Services, *, endpoint_id: int, first: int | None) -> list[DeliveryRow]:
    size = 50 if first is None else first
    if not 1 <= size <= MAX_DELIVERIES_PAGE:
        raise BadInputError(f"first must be between 1 and {MAX_DELIVERIES_PAGE}")
    async with services.db.connection() as conn:
        if await endpoints.fetch_endpoint(conn, endpoint_id=endpoint_id) is None:
            raise NotFoundError(f"there is no webhook endpoint {endpoint_id}")
        return await deliveries_db.list_deliveries(conn, endpoint_id=endpoint_id, first=size)


async def redeliver(services: Services, *, delivery_id: int) -> DeliveryRow:
    async with services.db.transaction() as conn:
        found = await deliveries_db.redeliver(conn, delivery_id=delivery_id, now=datetime.now(UTC))
    if found is None:
        raise NotFoundError(f"there is no webhook delivery {delivery_id}")
    return found
