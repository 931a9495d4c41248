"""The dashboard in a real headless browser (system chromium) against a running server with seeded data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser

from tests.helpers import running_stack
from tests.services.analytics.seed import HOSTILE, default_rules, seed


async def test_dashboard_login_funnel_numbers_csv_and_escaped_timeline(
    settings_kwargs: dict[str, Any], browser: Browser, screenshots: Path
) -> None:
    await default_rules(settings_kwargs["database_url"])
    consumers = ("scoring", "analytics")
    async with running_stack(settings_kwargs, consumers=consumers) as stack, httpx.AsyncClient(timeout=20) as client:
        await seed(stack, client)
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        await page.goto(f"{stack.base_url}/dashboard")
        assert page.url.endswith("/dashboard/login")  # not signed in: sent to the login page
        await page.fill("input[name=token]", "wrong")
        await page.click("button[type=submit]")
        assert "wrong admin token" in await page.inner_text(".error")
        await page.fill("input[name=token]", stack.admin_token)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{stack.base_url}/dashboard")
        (cookie,) = [c for c in await context.cookies() if c["name"] == "fs_dashboard"]
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["value"] != stack.admin_token

        await page.select_option("select[name=model]", "b2b")
        await page.click("form.filters button")
        for _ in range(100):
            if errors or await page.get_attribute("body", "data-charts") == "drawn":
                break
            await page.wait_for_timeout(100)
        assert errors == [], "\n".join(errors)
        await page.wait_for_selector("#funnel-chart svg")
        bar_js = (
            "Array.from(document.querySelectorAll('#funnel-chart .dataset-{} rect.bar'))"
            ".map(r => +r.getAttribute('height'))"
        )
        heights = bar_js.format(0)
        for _ in range(100):  # the chart draws a moment after load
            bars = await page.evaluate(heights)
            if any(bars):
                break
            await page.wait_for_timeout(100)
        assert len(bars) == 7
        assert bars[0] > bars[1] > bars[6] > 0 == bars[2]  # visitor 5, lead 4, customer 1, mql 0
        assert abs(bars[1] / bars[0] - 0.8) < 0.01
        drops = await page.evaluate(bar_js.format(1))
        assert drops[0] > 0 and drops[1] > drops[0]  # 1 lost after visitor, 4 after lead (nobody reached mql)
        assert abs(drops[0] / bars[0] - 0.2) < 0.01
        funnel = page.locator("table[data-table=funnel]")
        visitor = funnel.locator("tr", has_text="visitor").first
        assert await visitor.locator("td[data-col=entered]").inner_text() == "5"
        assert await visitor.locator("td[data-col=conversion]").inner_text() == "0.8"
        bottleneck = funnel.locator("tr.highlight")
        assert await bottleneck.locator("td[data-col=stage]").inner_text() == "lead"
        assert await page.inner_text("#bottleneck") == "lead"
        assert await page.inner_text("[data-rate=visitor_to_lead]") == "80.0 %"
        assert await page.inner_text("#revenue") == "110.00"
        assert await page.inner_text("#aov") == "110.00"
        await page.screenshot(path=str(screenshots / "analytics-funnel.png"), full_page=True)

        async with page.expect_download() as download_info:
            await page.click("#funnel a.csv")
        download = await download_info.value
        csv_text = Path(await download.path()).read_text()
        assert csv_text.splitlines()[0] == "stage,entered,exited,conversion,drop_off,bottleneck"
        assert "visitor,5,4,0.8,0.2,False" in csv_text

        await page.goto(f"{stack.base_url}/dashboard/cohorts?model=b2b")
        cohort = page.locator("table[data-table=cohorts]").first.locator("tbody tr").first
        assert await cohort.locator("td[data-col=leads]").inner_text() == "5"
        assert await cohort.locator("td[data-col=customer]").inner_text() == "1"
        await page.screenshot(path=str(screenshots / "analytics-cohorts.png"), full_page=True)

        await page.goto(f"{stack.base_url}/dashboard/email")
        assert await page.locator("#email-steps").count() == 1, (await page.content())[:3000]
        await page.screenshot(path=str(screenshots / "analytics-email.png"), full_page=True)

        await page.goto(f"{stack.base_url}/dashboard/leads")
        await page.fill("input[name=lead]", HOSTILE)
        await page.click("form.card button")
        await page.wait_for_selector("table[data-table=timeline]")
        timeline = await page.inner_text("table[data-table=timeline]")
        assert "<script>alert(1)</script>" in timeline  # shown as text
        assert "<b>bold</b>" in timeline
        assert await page.locator("main img").count() == 0
        assert await page.locator("main b").count() == 0
        assert HOSTILE in await page.inner_text("#lead h2")
        await page.screenshot(path=str(screenshots / "analytics-timeline.png"), full_page=True)

        await page.goto(f"{stack.base_url}/dashboard/mailbox")
        assert await page.locator("#mailbox-link").count() == 1
        assert dialogs == []  # no injected script ran

        await page.click("header form button")  # sign out
        await page.goto(f"{stack.base_url}/dashboard/csv/funnel")
        assert page.url.endswith("/dashboard/login")
        await context.close()
