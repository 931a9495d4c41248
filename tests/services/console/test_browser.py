"""The console in a real headless browser (Debian's chromium) against the running product: an admin
invites a marketer, who follows the emailed link and sets a password, then writes a template (seeing an
error at its line first), builds and activates a sequence, creates a source, sends an event with its
write key and sees the email arrive in the dev mailbox; a viewer sees no way to change anything, and a
forged change is refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.helpers import basic, eventually
from tests.services.console.stack import PASSWORD, console_stack
from tests.services.console.test_accounts import mailbox_link

BROKEN = "<p>Hello {{ lead.email }}</p>\n<p>{% if lead.email %}You are in.</p>"
FIXED = "<p>Hello {{ lead.email }}</p>\n<p>{% if lead.email %}You are in.{% endif %}</p>"


async def sign_in(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("header .who")).to_contain_text(email)


async def test_marketer_builds_a_sequence_and_sees_its_email_viewer_changes_nothing(
    settings_kwargs: dict[str, Any], tmp_path: Path, browser: Browser, screenshots: Path
) -> None:
    async with console_stack(settings_kwargs, tmp_path, pipeline=True) as stack, httpx.AsyncClient() as client:
        base = stack.base_url
        await stack.user(client, "boss@example.com", "admin")
        await stack.user(client, "viewer@example.com", "viewer")

        # the admin invites the marketer on the Users screen; the marketer follows the emailed link
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await sign_in(page, base, "boss@example.com")
        await page.goto(f"{base}/console/users")
        await page.fill("#invite-email", "marketer@example.com")
        await page.select_option("#invite-role", "marketer")
        await page.click("button:has-text('Send invitation')")
        await expect(page.locator(".msg")).to_contain_text("email sent")
        await context.close()
        link = mailbox_link(tmp_path, "marketer@example.com")
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await page.goto(link)
        await page.fill("#name", "Mia")
        await page.fill("#password", PASSWORD)
        await page.fill("#password2", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("header .who")).to_contain_text("marketer@example.com (marketer)")
        await context.close()
        # with JavaScript, the template editor checks and previews while typing (htmx)
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await sign_in(page, base, "marketer@example.com")
        await page.goto(f"{base}/console/templates/new")
        await page.fill("#html", BROKEN)
        await expect(page.locator("#preview .problems")).to_contain_text("html line 2")
        await page.fill("#html", FIXED)
        await expect(page.locator("#preview #rendered")).to_contain_text("Welcome")
        await context.close()

        # the rest without JavaScript: every form works as plain HTML
        context = await browser.new_context(viewport={"width": 1366, "height": 800}, java_script_enabled=False)
        page = await context.new_page()
        await sign_in(page, base, "marketer@example.com")

        # a template: an error shown at its line, then fixed and saved
        await page.goto(f"{base}/console/templates/new")
        await page.fill("#name", "welcome")
        await page.select_option("#kind", "transactional")
        await page.fill("#subject", "Welcome aboard, {{ lead.email }}")
        await page.fill("#html", BROKEN)
        await page.click("button[value=preview]")
        await expect(page.locator(".problems")).to_contain_text("html line 2")
        await expect(page.locator(".code .bad")).to_contain_text("{% if lead.email %}")
        await page.screenshot(path=screenshots / "console-template-error.png", full_page=True)
        await page.fill("#html", FIXED)
        await page.click("button[value=preview]")
        await expect(page.locator("#rendered .subject")).to_contain_text("Welcome aboard")
        await page.click("button[value=save]")
        await expect(page.locator(".msg")).to_contain_text("Template saved")
        template_url = page.url.split("?")[0]

        # a sequence from the simple form, then activated
        await page.goto(f"{base}/console/sequences/new")
        await page.fill("#name", "onboarding")
        await page.select_option("#message_class", "transactional")
        await page.fill("#event", "Signed Up")
        await page.click("button[type=submit]:has-text('Create draft')")
        await expect(page.locator("#status")).to_have_text("draft")
        await page.click("button:has-text('Activate')")
        await expect(page.locator("#status")).to_have_text("active")
        sequence_url = page.url.split("?")[0]

        # a source; its write key sends the test event
        await page.goto(f"{base}/console/sources")
        await page.fill("#name", "website")
        await page.click("button:has-text('Create source')")
        key = (await page.locator("#write-key").inner_text()).strip()
        assert key.startswith("wk_")
        await expect(page.locator("#snippet")).to_contain_text(f'data-write-key="{key}"')
        auth = basic(key)
        r = await client.post(
            f"{base}/v1/identify", json={"userId": "ann", "traits": {"email": "ann@example.com"}}, headers=auth
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"{base}/v1/track", json={"userId": "ann", "event": "Signed Up"}, headers=auth)
        assert r.status_code == 200, r.text

        # the email arrives in the dev mailbox, and the console shows it
        async def arrived() -> bool:
            await page.goto(f"{base}/console/mailbox")
            return await page.locator("#mailbox td", has_text="ann@example.com").count() > 0

        await eventually(arrived, timeout=60, what="the welcome email in the mailbox")
        await expect(page.locator("#mailbox")).to_contain_text("Welcome aboard, ann@example.com")
        await page.screenshot(path=screenshots / "console-mailbox.png", full_page=True)
        await page.goto(sequence_url)
        await expect(page.locator(".flow")).to_contain_text("send")
        await page.screenshot(path=screenshots / "console-sequence.png", full_page=True)
        await page.goto(f"{base}/console/leads/ann")
        await expect(page.locator("main")).to_contain_text("Signed Up")
        await page.goto(template_url)
        await page.fill("#lead", "ann")
        await page.click("button:has-text('Preview for this lead')")
        await expect(page.locator("#rendered .subject")).to_have_text("Welcome aboard, ann@example.com")
        await expect(page.locator("#rendered")).to_contain_text("for lead ann")
        await page.goto(f"{base}/console/audit")
        await expect(page.locator("#audit")).to_contain_text("POST /api/sequences")
        await context.close()

        # a viewer: nothing to click that changes something, and a forged form is refused
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await sign_in(page, base, "viewer@example.com")
        await page.goto(f"{base}/console/templates")
        await expect(page.locator("main")).to_contain_text("welcome")
        assert await page.locator("a:has-text('New template')").count() == 0
        await page.goto(template_url)
        assert await page.locator("button[value=save]").count() == 0
        await page.goto(sequence_url)
        assert await page.locator("button:has-text('Pause')").count() == 0
        await page.goto(f"{base}/console/sources")
        assert await page.locator("button:has-text('Create source')").count() == 0
        await page.screenshot(path=screenshots / "console-viewer.png", full_page=True)
        csrf = await page.locator("header input[name=csrf]").get_attribute("value")
        assert csrf
        forged = await page.request.post(f"{sequence_url}/pause", form={"csrf": csrf})
        assert forged.status == 403 and "viewer role may only read" in await forged.text()
        users = await page.goto(f"{base}/console/users")
        assert users is not None and users.status == 403
        await page.goto(sequence_url)
        await expect(page.locator("#status")).to_have_text("active")
        await context.close()
        assert re.search(r"/console/templates/[0-9a-f-]{36}", template_url)
