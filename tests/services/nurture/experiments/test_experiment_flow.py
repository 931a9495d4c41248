"""An A/B send step end to end: the real HTTP edge and admin API, scoring and nurture consumers, the
scheduler, a real SMTP server, opens through the real pixel endpoint, results and the automatic winner."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from sqlalchemy import text

from services.nurture.delivery.mailer import make_mailer
from services.nurture.experiments import repository
from services.nurture.experiments.assignment import assign
from services.nurture.experiments.runner import evaluate
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from shared.db import make_engine, make_sessionmaker
from shared.settings import NurtureSettings
from shared.tokens import make_click_token, make_open_token
from tests.helpers import Stack, basic, eventually, running_stack
from tests.smtp import SmtpSink

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SCANNER = "Barracuda Sentinel (EE)"
PIXEL = re.compile(r'src="(http://[^"]+/t/o/[^"]+\.gif)"')
LINK = re.compile(r'href="(http://[^"]+/t/c/[^"]+)"')
OFFER = "https://shop.example/offer"
SUBJECTS = {"a": "Ten percent off", "b": "Free shipping"}


@asynccontextmanager
async def scheduler(settings_kwargs: dict[str, Any], stack: Stack, sink: SmtpSink) -> AsyncIterator[Any]:
    """The nurture process's scheduler, sending to the SMTP sink with links pointing at the running edge."""
    settings = NurtureSettings(
        **settings_kwargs, secret_key="test-secret", smtp_host=sink.host, smtp_port=sink.port,
        public_base_url=stack.base_url,
    )  # fmt: skip
    engine = make_engine(settings.database_url, pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    loop = asyncio.create_task(
        scheduler_loop(Scheduler(sessionmaker, SequenceMessenger(settings, sessionmaker, make_mailer(settings))), 0.05)
    )
    try:
        yield sessionmaker
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await engine.dispose()


class Shop:
    def __init__(self, stack: Stack, client: httpx.AsyncClient, sink: SmtpSink, key: str) -> None:
        self.stack, self.client, self.sink, self.key = stack, client, sink, key
        self.sent = 0

    async def api(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = await self.client.request(method, f"{self.stack.base_url}/api{path}", json=body, headers=self.stack.admin)
        assert r.status_code == status, r.text
        return r.json()

    async def sign_up(self, count: int) -> list[tuple[str, str]]:
        """New people sign up; returns (user, address) once each has its email."""
        people = [(f"p{self.sent + i}", self.sink.address(f"p{self.sent + i}")) for i in range(count)]
        self.sent += count
        batch = [m for user, address in people for m in (
            {"type": "identify", "userId": user, "traits": {"email": address}},
            {"type": "track", "userId": user, "event": "Signed Up"},
        )]  # fmt: skip
        r = await self.client.post(f"{self.stack.base_url}/v1/batch", json={"batch": batch}, headers=basic(self.key))
        assert r.is_success, r.text
        for _, address in people:
            await self.sink.wait_for(address, 1, timeout=30)
        return people

    async def lead_id(self, user: str) -> uuid.UUID:
        async def known() -> str | None:
            r = await self.client.get(f"{self.stack.base_url}/api/leads/{user}", headers=self.stack.admin)
            return str(r.json()["lead_id"]) if r.status_code == 200 else None

        return uuid.UUID(await eventually(known, what=f"lead {user}"))

    async def open_as_person(self, user: str, message_id: str) -> None:
        """The person opens the email an hour after it was sent (a pixel token as the email's, sent earlier)."""
        sent_at = datetime.now(UTC) - timedelta(hours=1)
        token = make_open_token("test-secret", message_id=message_id, sent_at=sent_at, user_id=user)
        r = await self.client.get(f"{self.stack.base_url}/t/o/{token}.gif", headers={"User-Agent": BROWSER})
        assert r.status_code == 200

    async def click_as_person(self, user: str, message_id: str) -> None:
        sent_at = datetime.now(UTC) - timedelta(hours=1)
        token = make_click_token("test-secret", url=OFFER, message_id=message_id, sent_at=sent_at, user_id=user)
        r = await self.client.get(f"{self.stack.base_url}/t/c/{token}", headers={"User-Agent": BROWSER})
        assert r.status_code == 302 and r.headers["location"] == OFFER

    async def open_as_crawler(self, html: str) -> None:
        """The email's own pixel and link, fetched by a crawler and a mail scanner: recorded as bots, never counted."""
        [pixel] = PIXEL.findall(html)
        r = await self.client.get(pixel.replace("&amp;", "&"), headers={"User-Agent": CRAWLER})
        assert r.status_code == 200
        [link] = LINK.findall(html)
        r = await self.client.get(link.replace("&amp;", "&"), headers={"User-Agent": SCANNER})
        assert r.status_code == 302 and r.headers["location"] == OFFER


def html_of(sink: SmtpSink, address: str) -> tuple[str, str, str]:
    [mail] = sink.received(address)
    body = mail.message.get_body(("html",))
    assert body is not None
    return str(mail.message["Subject"]), str(mail.message["Message-ID"]), str(body.get_content())


async def test_an_ab_send_step_sends_variants_counts_human_opens_and_routes_the_rest_to_the_winner(
    settings_kwargs: dict[str, Any], smtp_sink: SmtpSink
) -> None:
    async with running_stack(settings_kwargs) as stack, httpx.AsyncClient() as client:
        await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in stack.runners.values())), 60)
        shop = Shop(stack, client, smtp_sink, await stack.create_source(client))
        templates = {}
        for key, subject in SUBJECTS.items():
            html = f"<p>{subject} this week.</p><a href='{OFFER}'>Shop now</a>"
            body = {"name": f"offer-{key}", "subject": subject, "html": html, "kind": "transactional"}
            templates[key] = (await shop.api("POST", "/templates", body, 201))["id"]
        variants = [{"key": k, "template_id": t} for k, t in templates.items()]
        definition = {
            "trigger": {"kind": "event", "event": "Signed Up"},
            "steps": [{"id": "offer", "type": "send_email", "template_id": templates["a"], "variants": variants}],
        }
        sequence = (await shop.api("POST", "/sequences", {"name": "welcome offer", "message_class": "transactional",
                                                          "definition": definition}, 201))["id"]  # fmt: skip
        await shop.api("POST", f"/sequences/{sequence}/activate")
        experiment = await shop.api("POST", "/experiments", {
            "name": "offer subject", "sequence_id": sequence, "step_id": "offer", "metric": "open",
            "window": "P1D", "min_sample": 20, "auto_winner": True,
        }, 201)  # fmt: skip
        assert experiment["kind"] == "send" and [v["key"] for v in experiment["variants"]] == ["a", "b"]
        await shop.api("POST", "/experiments", {"name": "again", "sequence_id": sequence, "step_id": "offer",
                                                "metric": "click"}, 409)  # fmt: skip
        weights = [("a", 1.0), ("b", 1.0)]

        async with scheduler(settings_kwargs, stack, smtp_sink) as sessionmaker:
            # Leads sign up until each variant has a little more than the minimum sample.
            people: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}
            while min(len(v) for v in people.values()) < 25:
                for user, address in await shop.sign_up(8):
                    subject, message_id, html = html_of(smtp_sink, address)
                    expected = assign(experiment["id"], await shop.lead_id(user), weights)
                    assert subject == SUBJECTS[expected]  # each lead gets its deterministic variant
                    people[expected].append((user, address))
                    if expected == "b":
                        await shop.open_as_person(user, message_id)
                    elif len(people["a"]) == 1:
                        await shop.click_as_person(user, message_id)  # the first lead of a clicks (without the pixel)
                    await shop.open_as_crawler(html)  # every email is also fetched by a crawler

            async def counted() -> dict[str, Any] | None:
                results = await shop.api("GET", f"/experiments/{experiment['id']}/results")
                by_key = {v["key"]: v for v in results["variants"]}
                return results if by_key["b"]["total"] == len(people["b"]) else None

            exposed = len(people["a"]) + len(people["b"])
            for name in ("Email Opened", "Email Link Clicked"):
                await eventually(partial(_bot_events, sessionmaker, name, exposed), what=f"bot {name} recorded")
            results = await eventually(counted, timeout=30, what="human opens of variant b counted")
            a, b = results["variants"]
            assert (a["exposures"], a["total"], b["exposures"]) == (len(people["a"]), 0, len(people["b"]))
            assert a["rate"] == 0 and b["rate"] == 1 and b["prob_best"] > 0.99  # the crawler's opens left out
            [vs] = results["comparisons"]
            assert vs["variant"] == "b" and vs["significant"] and vs["interval_low"] > 0
            assert results["leader"] == "b" and results["experiment"]["status"] == "running"
            clicks = await eventually(
                lambda: _clicks(sessionmaker, experiment["id"]), what="the person's click counted"
            )
            assert clicks == [1.0, 0.0]  # per variant; the scanner's clicks on every email left out

            assert await evaluate(sessionmaker) == [experiment["id"]]
            decided = await shop.api("GET", f"/experiments/{experiment['id']}")
            assert decided["status"] == "decided" and decided["winner"] == "b"
            numbers = {v["key"]: v["exposures"] for v in decided["decision"]["variants"]}
            assert numbers == {"a": len(people["a"]), "b": len(people["b"])}

            # After the decision every new lead gets the winner, also those the split would have sent to a.
            would_be_a = 0
            while would_be_a < 3:
                for user, address in await shop.sign_up(6):
                    subject, _, _ = html_of(smtp_sink, address)
                    assert subject == SUBJECTS["b"]
                    would_be_a += assign(experiment["id"], await shop.lead_id(user), weights) == "a"
            results = await shop.api("GET", f"/experiments/{experiment['id']}/results")
            assert results["variants"][0]["exposures"] == len(people["a"])  # a got no more traffic


async def _clicks(sessionmaker: Any, experiment_id: str) -> list[float] | None:
    """The same experiment's exposures measured by clicks instead of opens."""
    async with sessionmaker() as session:
        stored = await repository.get(session, uuid.UUID(experiment_id))
        assert stored is not None
        arms = await repository.outcomes(session, {**stored, "metric": "click"})
    totals = [arm.total for arm in arms]
    return totals if sum(totals) else None


async def _bot_events(sessionmaker: Any, name: str, at_least: int) -> bool | None:
    async with sessionmaker() as session:
        n = await session.scalar(
            text("SELECT count(*) FROM lead_events WHERE name = :n AND bot IS NOT NULL"), {"n": name}
        )
    return True if n >= at_least else None
