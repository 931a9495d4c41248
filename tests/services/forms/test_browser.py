"""The embed in a real headless browser (Debian's chromium through Playwright): a website on another
origin loads the tracker and the form's script tag; the visitor fills the form in the iframe, corrects an
error shown next to its field, submits, gets the confirmation email over real SMTP, opens the link and
confirms; the lead is subscribed with the visitor's anonymous history, and the lead magnet is mailed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.helpers import eventually
from tests.services.forms.helpers import Forms, forms_stack, link_in
from tests.smtp import SmtpSink


@contextmanager
def website(html: str) -> Iterator[str]:
    """A customer's website on its own origin (localhost, while FunnelStream answers on 127.0.0.1)."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's hook name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def names_of(f: Forms, lead_id: str) -> list[str]:
    rows = await f.scalar(
        "SELECT array_agg(coalesce(name, type) ORDER BY occurred_at) FROM lead_events WHERE lead_id = :l",
        l=uuid.UUID(lead_id),
    )
    return list(rows or [])


async def test_a_visitor_signs_up_in_the_embedded_form_and_confirms_in_the_browser(
    settings_kwargs: dict[str, Any],
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,
    screenshots: Path,
) -> None:
    async with forms_stack(settings_kwargs, smtp_sink, monkeypatch) as f:
        write_key = await f.stack.create_source(f.client)
        form = await f.create(lead_magnet_url="https://cdn.acme.example/guide.pdf")
        embed = form["embed"]["script"].replace("<script ", '<script data-target="#signup" ')
        site = (
            "<!doctype html><html><head><title>Acme pricing</title>"
            f'<script src="{f.base}/t/fs.js" data-write-key="{write_key}"></script></head>'
            f'<body><h1>Acme pricing</h1><p>Get our guide:</p><div id="signup"></div>{embed}</body></html>'
        )
        to = smtp_sink.address("browser")
        with website(site) as origin:
            context = await browser.new_context(viewport={"width": 900, "height": 900})
            try:
                page = await context.new_page()
                await page.goto(f"{origin}/pricing?utm_source=ads&utm_campaign=q4")
                frame = page.frame_locator("#signup iframe")
                # The frame fits the form (its height reported by the page inside): no inner scroll bar.
                iframe = page.locator("#signup iframe")
                await frame.locator("#fs-submit").wait_for()
                await eventually(lambda: _fits(iframe), what="the frame fitting the form")
                await frame.locator("#fs-email").fill("ann@")
                await frame.locator("#fs-first_name").fill("Ann")
                await frame.locator("#fs-job_title").fill("Head of Growth")
                await frame.locator("#fs-team").select_option("11-50")
                await frame.locator("#fs-consent").check()
                await frame.locator("#fs-submit").click()
                error = frame.locator("#error-email")
                await error.wait_for()
                assert await error.inner_text() == "Please enter a valid email address."
                assert await frame.locator("#fs-first_name").input_value() == "Ann"
                await page.screenshot(path=str(screenshots / "forms-1-error-next-to-field.png"), full_page=True)

                await frame.locator("#fs-email").fill(to)
                await frame.locator("#fs-consent").check()
                await frame.locator("#fs-submit").click()
                await frame.locator("#message").wait_for()
                assert "check your inbox" in await frame.locator("#message").inner_text()
                await page.screenshot(path=str(screenshots / "forms-2-submitted.png"), full_page=True)
                cookies = {c["name"]: c["value"] for c in await context.cookies(origin)}
                aid = cookies["fs_aid"]

                (confirmation,) = await smtp_sink.wait_for(to)
                link = link_in(confirmation.message)
                await page.goto(link)
                await page.screenshot(path=str(screenshots / "forms-3-confirm-page.png"), full_page=True)
                await page.locator("#confirm").click()
                await page.locator("#message").wait_for()
                assert "confirmed" in await page.locator("#message").inner_text()
                await page.screenshot(path=str(screenshots / "forms-4-confirmed.png"), full_page=True)
            finally:
                await context.close()

        consent = await f.consent(to)
        (subscription,) = consent["subscriptions"]
        status = (subscription["topic"], subscription["status"], subscription["method"])
        assert status == ("news", "subscribed", "double")
        assert consent["effective"]["news"] == "subscribed"
        _, magnet = await smtp_sink.wait_for(to, 2)
        assert link_in_text(magnet) == "https://cdn.acme.example/guide.pdf"

        # The lead is the visitor: the tracker's page view and the submission, under the cookie's id.
        lead = await f.lead(to)
        assert lead["anonymous_id"] == aid and lead["traits"]["firstName"] == "Ann"
        names = await eventually(
            lambda: _with(names_of(f, lead["lead_id"]), "Form Confirmed"), what="the visitor's history"
        )
        assert names[0] == "page" and "Form Submitted" in names
        props = await f.scalar(
            "SELECT properties FROM lead_events WHERE lead_id = :l AND name = 'Form Submitted'",
            l=uuid.UUID(lead["lead_id"]),
        )
        assert props["utm_source"] == "ads" and props["utm_campaign"] == "q4"


async def _fits(iframe: Any) -> bool:
    outer = await iframe.evaluate("f => f.clientHeight")
    inside = await (await iframe.element_handle()).content_frame()
    inner = await inside.evaluate("() => document.documentElement.scrollHeight")
    return bool(outer > 560 and abs(outer - inner) <= 2)


def link_in_text(received: Any) -> str:
    body = str(received.message.get_body(preferencelist=("plain",)).get_content())
    return next(line.strip() for line in body.splitlines() if line.startswith("https://"))


async def _with(names: Any, wanted: str) -> list[str] | None:
    found: list[str] = await names
    return found if wanted in found else None
