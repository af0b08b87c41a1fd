"""The dashboard in headless Chromium (Debian's), driven by Playwright, against a real `callmeter serve`."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.factories import (
    add_agent,
    auth,
    call_events,
    free_port,
    graphql,
    make_token,
    post_callback,
    start_server,
)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytestmark = pytest.mark.browser

if not shutil.which(CHROMIUM) and os.environ.get("CI", "").lower() != "true":
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture(scope="module")
async def browser():
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], errors


def now_minus(minutes: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)


async def seed_calls(server, client) -> None:
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    await add_agent(server.database_url, user_id=1, name="pedro", numbers=["+18449263377"])
    for index, (duration, number) in enumerate(
        [(145, "+18449263376"), (61, "+18449263377"), (600, "+18449263376")]
    ):
        for form in call_events(
            f"CA{index:032x}", answered_at=now_minus(60 + index), duration=duration, to=number
        ):
            assert (await post_callback(client, server.base_url, form)).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_page_shows_the_same_totals_as_the_rest_api(server, client, page):
    await seed_calls(server, client)
    current = (await client.get("/api/usage/current", headers=auth(1))).json()
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_selector("#dashboard:not([hidden])")
    assert await page.text_content("#total-calls") == str(current["total_calls"])
    assert await page.text_content("#total-minutes") == f"{current['total_minutes']:.1f}"
    assert await page.text_content("#total-cost") == f"${current['total_cost_usd']:.2f}"
    assert "token=" not in page.url  # the link's token is kept, not left in the address bar
    agents = await page.locator("#agents tr td:first-child").all_text_contents()
    assert agents == ["juana", "pedro"]
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 3")
    assert await page.locator("#chart rect").count() == 12
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.reload()
    await page.wait_for_selector("#dashboard:not([hidden])")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
    await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_call_appears_live_and_leaves_when_it_completes(server, client, page):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_selector("#live-state.on")
    assert await page.is_visible("#live-empty")
    events = call_events("CA" + "e" * 32, answered_at=now_minus(2), duration=120)
    for form in events[:3]:
        await post_callback(client, server.base_url, form)
    row = page.locator(f'#live-calls li[data-sid="CA{"e" * 32}"]')
    await row.wait_for()
    first = await row.locator(".duration").text_content()
    await page.wait_for_function(  # the duration ticks every second while the call is live
        "([sid, first]) => document.querySelector(`#live-calls li[data-sid='${sid}'] .duration`)"
        ".textContent !== first",
        arg=[f"CA{'e' * 32}", first],
        timeout=5000,
    )
    assert re.match(r"≈ \$\d+\.\d{2,4}", await row.locator(".cost").text_content())
    await post_callback(client, server.base_url, events[3])
    await row.wait_for(state="detached")
    await page.wait_for_function("document.querySelector('#total-calls').textContent === '1'")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_bad_token_shows_a_sign_in_error(server, page):
    await page.goto(f"{server.base_url}/?token={make_token(1, secret='not-the-secret-0123456789abcdef-x')}")
    error = page.locator("#sign-in-error")
    await error.wait_for()
    assert "refused" in await error.text_content()
    assert await page.is_hidden("#dashboard")
    await page.fill("#token", make_token(1))
    await page.click("#sign-in-form button")
    await page.wait_for_selector("#dashboard:not([hidden])")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_history_pages_and_filters(server, client, page):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    for index in range(25):
        for form in call_events(f"CA{index:032x}", answered_at=now_minus(200 - index), duration=30):
            await post_callback(client, server.base_url, form)
    busy = call_events("CA" + "f" * 32, answered_at=now_minus(1), duration=0)
    await post_callback(client, server.base_url, {**busy[3], "CallStatus": "busy"})
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 20")
    await page.click("#next-page")
    await page.wait_for_function("document.querySelector('#page-number').textContent === 'Page 2'")
    assert await page.locator("#calls tr").count() == 6
    await page.click("#prev-page")
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 20")
    await page.select_option("#status-filter", "FAILED")
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 1")
    assert "failed" in await page.locator("#calls tr").first.text_content()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_service_that_is_down_says_so(server, browser):
    context = await browser.new_context()
    page = await context.new_page()
    await page.route("**/graphql", lambda route: route.abort())
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    banner = page.locator("#banner")
    await banner.wait_for()
    assert "cannot be reached" in await banner.text_content()
    await context.close()


async def test_a_service_that_stops_while_open_says_so_at_once_and_recovers(browser, tmp_path):
    url, port = f"sqlite:///{tmp_path / 'stopping.db'}", free_port()
    handle = start_server(url, tmp_path, port=port)
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{handle.base_url}/?token={make_token(1)}")
        await page.wait_for_selector("#live-state.on")
        handle.stop()
        banner = page.locator("#banner")
        await banner.wait_for(timeout=5000)  # the live connection dropped: no user action needed
        assert "cannot be reached" in await banner.text_content()
        handle = start_server(url, tmp_path, port=port)
        await banner.wait_for(state="hidden", timeout=20000)
        await page.wait_for_selector("#live-state.on", timeout=20000)
    finally:
        handle.stop()
        await context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_outbound_calls_show_the_number_called(server, client, page):
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    # From is the agent's number, To the customer's (+15550001111).
    events = call_events("CA" + "0b" * 16, answered_at=now_minus(1), duration=60, direction="outbound-api")
    for form in events:
        assert (await post_callback(client, server.base_url, form)).status_code == 200
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 1")
    row = await page.locator("#calls tr").first.text_content()
    assert "+15550001111" in row and "+18449263376" not in row
    await page.select_option("#status-filter", "ACTIVE")
    await page.wait_for_function(
        "document.querySelector('#calls-empty').textContent === 'No calls with this status.'"
    )


async def test_assets_are_served_and_local_only(server):
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        index = await http.get("/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        script = await http.get("/dashboard/app.js")
        assert "javascript" in script.headers["content-type"]
        style = await http.get("/dashboard/style.css")
        assert style.headers["content-type"].startswith("text/css")
    for body in (index.text, script.text, style.text):
        assert not re.search(
            r"(src|href)=[\"']?https?://|@import\s+url\(\s*[\"']?https?://|from [\"']https?://", body
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_page_shows_the_customers_billing_zone_and_their_months(server, client, page):
    from callmeter.db.customers import ensure_customer
    from callmeter.months import Calendar
    from tests.factories import open_db

    zone = "Pacific/Kiritimati"  # UTC+14: its month is ahead of UTC's for 14 hours of every 1st
    db = await open_db(server.database_url)
    async with db.transaction() as conn:
        await ensure_customer(conn, user_id=1, calendar=Calendar.of_zone(zone))
    await db.disconnect()
    current = (await client.get("/api/usage/current", headers=auth(1))).json()["month"]
    assert current == str(Calendar.of_zone(zone).current())
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_selector("#dashboard:not([hidden])")
    assert await page.text_content("#billing-zone") == f"Months in {zone} time"
    assert (await page.text_content("#plan-name")).startswith(current)
    assert await page.input_value("#invoice-month") == current
    assert await page.locator("#chart rect").count() == 12
    last = (await page.locator("#chart title").all_text_contents())[-1]
    assert last.startswith(f"{current}:"), last


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_customers_see_balance_and_alerts_and_admins_see_webhook_deliveries(server, client, page):
    admin = auth(1, admin=True)

    async def gql(query: str) -> dict:
        body = (await client.post("/graphql", json={"query": query}, headers=admin)).json()
        assert "errors" not in body, body
        return body["data"]

    # The session's server takes public https:// URLs only: this one cannot be reached from here, so
    # its delivery stays pending, retried.
    await gql(
        'mutation { createWebhookEndpoint(input: {url: "https://8.8.8.8/hook", events: ["balance.low"]}) '
        "{ id } }"
    )
    await gql('mutation { setLimits(userId: 2, input: {lowBalanceUsd: "24.99"}) { userId } }')
    await gql('mutation { grantCredits(userId: 2, amountUsd: "25.00", idempotencyKey: "d") { id } }')
    await gql(
        'mutation { createUsageAlert(input: {userId: 2, metric: SPEND_USD, threshold: "10", name: "ten"}) '
        "{ id } }"
    )
    agent = await add_agent(server.database_url, user_id=2, name="ana", numbers=[])
    for form in call_events("CA" + "d" * 32, answered_at=now_minus(30), duration=60):  # $0.05: low
        assert (
            await post_callback(client, server.base_url, form, query=f"agent_id={agent}")
        ).status_code == 200

    await page.goto(f"{server.base_url}/?token={make_token(2)}")
    await page.wait_for_selector("#dashboard:not([hidden])")
    assert (await page.text_content("#balance")).startswith("Balance $24.95 · available $24.95")
    assert await page.locator("#alerts tr").all_text_contents() == ["tenSpend$10.00not yet"]
    assert await page.is_hidden("#webhooks-card")

    await page.goto(f"{server.base_url}/?token={make_token(1, admin=True)}")
    await page.wait_for_selector("#webhooks-card:not([hidden])")
    await page.wait_for_selector("#webhooks tr")
    assert await page.text_content("#webhooks h3") == "https://8.8.8.8/hook"
    assert await page.text_content("#webhooks .hint") == "balance.low"
    cells = await page.locator("#webhooks tr td").all_text_contents()
    assert cells[1:3] == ["balance.low", "pending"], cells


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_call_shows_its_cost_by_component_and_the_month_by_meter(server, client, page):
    created = await graphql(
        client,
        """mutation { createPlan(input: {name: "ai", kind: PAY_AS_YOU_GO, ratePerMinute: "0.05",
        meterRates: [{meter: "tts_characters", ratePerUnit: "0.00003"}]}) { id } }""",
        headers=auth(1, admin=True),
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    plan_id = created["data"]["createPlan"]["id"]
    await graphql(
        client,
        f'mutation {{ assignPlan(userId: 1, planId: "{plan_id}", fromMonth: "{month}") {{ id }} }}',
        headers=auth(1, admin=True),
    )
    await add_agent(server.database_url, user_id=1, name="juana", numbers=["+18449263376"])
    call = "CA" + "d" * 32
    for form in call_events(call, answered_at=now_minus(10), duration=120):
        assert (await post_callback(client, server.base_url, form)).status_code == 200
    event = {
        "idempotency_key": "e1",
        "call_sid": call,
        "meter": "tts_characters",
        "quantity": "1000",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    assert (
        await client.post("/api/usage/events", json={"events": [event]}, headers=auth(1))
    ).status_code == 200
    await page.goto(f"{server.base_url}/?token={make_token(1)}")
    await page.wait_for_selector("#dashboard:not([hidden])")
    await page.wait_for_function("document.querySelectorAll('#calls tr').length === 1")
    cells = await page.locator("#calls tr td").all_text_contents()
    assert cells[5] == "$0.13"  # $0.10 of minutes and $0.03 of speech
    segments = page.locator("#calls .breakdown .seg")
    assert await segments.count() == 2
    assert [await segments.nth(i).get_attribute("data-meter") for i in range(2)] == [
        "telephony_minutes",
        "tts_characters",
    ]
    assert "tts_characters: 1000 · $0.03" in await page.locator("#calls .breakdown").get_attribute("title")
    meters = [await row.locator("td").all_text_contents() for row in await page.locator("#meters tr").all()]
    assert meters == [["telephony_minutes", "2", "$0.10"], ["tts_characters", "1,000", "$0.03"]]
    assert await page.locator("#agents tr td").all_text_contents() == ["juana", "1", "2.0", "$0.13"]
    await page.screenshot(path=str(ARTIFACTS / "dashboard-meters.png"), full_page=True)
