"""Benchmark of nurture (issue 6): email delivery rate and scheduler lateness; prints ONE JSON object to stdout.

Delivery, per round: --emails marketing emails (tracked links, open pixel, List-Unsubscribe) through the
product's `send_many` in batches of --batch, over `SmtpMailer` with --connections pooled connections: per
batch one claim in `email_sends` (committed before SMTP), the SMTP exchanges, one outcome update. They go
to a local aiosmtpd sink in its own process, which counts what it received. Baselines in the same round,
same messages (built before timing by the product's own composer): raw aiosmtplib `sendmail` over ONE
reused connection, and over --connections reused connections. Rounds rotate the order of the three runs.

Scheduler: an active sequence `wait 1 min → update_audience`; --rows enrollments waiting at its second
step, whose `scheduled_steps` rows fall due within one minute (--spread seconds, evenly, starting --lead
seconds after they are written). The real `scheduler_loop` runs them in this process, as a nurture process
would; each row's lateness is the moment its round's transaction committed minus its `due_at`.

    .venv/bin/python bench/nurture.py [--emails 5000] [--batch 200] [--connections 4] [--rounds 3]
                                      [--rows 100000] [--spread 60] [--lead 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from typing import Any

import aiosmtplib
import asyncpg
import psutil
from _stack import Stack, components, cpu_seconds, machine, percentile, progress, setup_logging
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from funnelstream.cli import run as run_loop
from funnelstream.embedded import free_port
from services.nurture.consent.links import unsubscribe_url
from services.nurture.delivery.compose import SendRequest, compose
from services.nurture.delivery.mail_settings import resolve
from services.nurture.delivery.mailer import make_mailer
from services.nurture.delivery.message import Outgoing, new_message_id
from services.nurture.delivery.service import send_many
from services.nurture.sequences import queries
from services.nurture.sequences.definition import Definition
from services.nurture.sequences.messaging import SequenceMessenger
from services.nurture.sequences.repository import DueStep
from services.nurture.sequences.scheduler import Scheduler, scheduler_loop
from services.nurture.sequences.timing import SendPolicy
from shared.db import make_engine, make_sessionmaker
from shared.settings import NurtureSettings, to_libpq_url

TARGETS: dict[str, float] = {"ratio_to_raw_same_connections": 0.5, "lateness_p99_s": 1.0}
AIMS: dict[str, float] = {"emails_per_s_per_process": 500}
FIELDS = NurtureSettings.model_fields
DEFAULT_CONNECTIONS: int = FIELDS["smtp_connections"].default
DEFAULT_SCHEDULER_BATCH: int = FIELDS["scheduler_batch"].default
DEFAULT_POLL_S: float = FIELDS["scheduler_poll_seconds"].default
SECRET = "bench-secret"  # noqa: S105 - signs this run's own links, nothing else
BASE_URL = "https://t.acme.example"


# -- the SMTP sink: aiosmtpd in its own process ----------------------------------------------------------
class _CountingHandler:
    """Accepts every message and counts it (messages, bytes) in memory shared with the bench process."""

    def __init__(self, counts: SynchronizedArray[int]) -> None:
        self.counts = counts

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        size = len(envelope.original_content or envelope.content or b"")
        with self.counts.get_lock():
            self.counts[0] += 1
            self.counts[1] += size
        return "250 2.0.0 Ok: queued"


def _sink_main(port: int, counts: SynchronizedArray[int], ready: Event, stop: Event) -> None:
    """The sink process: aiosmtpd's Controller (its server thread on uvloop) until `stop` is set."""
    import uvloop
    from aiosmtpd.controller import Controller

    sys.stdout = sys.stderr  # stdout belongs to the parent's JSON
    controller = Controller(
        _CountingHandler(counts), hostname="127.0.0.1", port=port, loop=uvloop.new_event_loop(), decode_data=False
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class Sink:
    """A local SMTP server in a separate (spawned) process: it must not share the GIL with the client."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.counts: SynchronizedArray[int] = ctx.Array("q", 2)
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(
            target=_sink_main, args=(self.port, self.counts, self._ready, self._stop), name="smtp-sink", daemon=True
        )

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 60
        while not self._ready.wait(0.2):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the SMTP sink did not start (exit code {self.proc.exitcode})")

    def stop(self) -> None:
        if self.proc.pid is None:
            return  # never started
        self._stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)

    @property
    def received(self) -> tuple[int, int]:
        with self.counts.get_lock():
            return int(self.counts[0]), int(self.counts[1])


# -- what is sent ------------------------------------------------------------------------------------------
PATHS = ("pricing", "features/scoring", "features/nurture", "customers/northwind", "docs/getting-started",
         "blog/lead-scoring-101", "webinar/2026-q3", "demo")  # fmt: skip
PARAGRAPH = (
    "Teams that score leads on behaviour, not only on form fields, hand sales the right accounts a week "
    "earlier. Here is what changed for companies like yours after their first month with us, and the three "
    "settings most of them adjust first. "
)


def make_request(i: int, tag: str) -> SendRequest:
    """The i-th marketing email: ~8 KB of HTML with 8 tracked links and a footer, a plain-text part."""
    lead_id = uuid.UUID(int=i + 1)
    email = f"lead-{i}@inbox.example"
    unsubscribe = unsubscribe_url(BASE_URL, SECRET, lead_id, email, "product-news")
    links = "".join(
        f'<tr><td style="padding:6px 0"><a href="https://www.acme.example/{p}?utm_source=nurture&amp;utm_medium=email'
        f'&amp;utm_campaign=onboarding" style="color:#0b5cff">Read more: {p}</a></td></tr>'
        for p in PATHS
    )
    paragraphs = "".join(f'<p style="margin:0 0 12px;line-height:1.5">{PARAGRAPH * 2}</p>' for _ in range(6))
    html = (
        '<!doctype html><html><head><meta charset="utf-8"></head><body style="font-family:Arial,sans-serif">'
        f'<table width="600" cellpadding="0" cellspacing="0"><tr><td><h1>Hi Alex {i},</h1>{paragraphs}'
        f'</td></tr>{links}<tr><td><p style="font-size:12px;color:#888">Acme Inc., 1 Market St, Springfield. '
        f'<a href="{unsubscribe}">Unsubscribe</a></p></td></tr></table></body></html>'
    )
    text_part = f"Hi Alex {i},\n\n" + "\n\n".join(PARAGRAPH * 2 for _ in range(3)) + f"\n\nUnsubscribe: {unsubscribe}\n"
    return SendRequest(
        send_key=f"bench:{tag}:{i}",
        lead_id=lead_id,
        to_email=email,
        kind="marketing",
        subject=f"Alex {i}, three settings teams change first",
        html=html,
        text=text_part,
        user_id=f"user-{i}",
        unsubscribe_url=unsubscribe,
        topic="product-news",
    )


def raw_messages(requests: Sequence[SendRequest], settings: NurtureSettings) -> list[Outgoing]:
    """The same messages as the product sends, built by its composer (fresh Message-IDs), before timing."""
    mail = resolve(None, settings)
    now = datetime.now(UTC)
    return [compose(r, mail, settings, new_message_id(mail.sender_domain), now) for r in requests]


# -- delivery runs -----------------------------------------------------------------------------------------
@dataclass
class SendRun:
    """One run of one side: emails the sink received, over what time, and at what CPU cost."""

    emails: int
    delivered: int
    wall_s: float
    cpu_pct: dict[str, float]
    batches_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def emails_per_s(self) -> float:
        return self.delivered / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "emails_per_s": round(self.emails_per_s, 1),
            "delivered": self.delivered,
            "wall_s": round(self.wall_s, 3),
            "cpu_pct": self.cpu_pct,
        }
        if self.batches_s:
            out["batch_p50_ms"] = round(percentile(self.batches_s, 50) * 1000, 1)
            out["batch_p99_ms"] = round(percentile(self.batches_s, 99) * 1000, 1)
            out["statuses"] = self.statuses
        return out


class CpuMeter:
    """CPU over a window as % of one core: the bench process and the sink (each alone), PostgreSQL (with its
    backends alive at both ends), and `other`: everything else the machine ran (it is shared)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = time.perf_counter()
        self.before = self._sample()

    def _sample(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, pid in self.pids.items():
            if name == "postgres":
                found[name] = cpu_seconds([pid])
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                times = psutil.Process(pid).cpu_times()  # this process only: its children are the sink and PG
                found[name] = times.user + times.system
        machine_times = psutil.cpu_times()
        found["machine"] = sum(machine_times) - machine_times.idle - getattr(machine_times, "iowait", 0.0)
        return found

    def pct(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start
        after = self._sample()
        # a PostgreSQL backend that exited during the window takes its CPU along: never below zero
        used = {k: max(0.0, after[k] - self.before.get(k, after[k])) for k in after}
        used["other"] = max(0.0, used.pop("machine") - sum(used.values()))
        return {name: round(100 * seconds / elapsed, 1) if elapsed else 0.0 for name, seconds in used.items()}


async def run_product(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: NurtureSettings,
    requests: Sequence[SendRequest],
    batch: int,
    sink: Sink,
    pids: dict[str, int],
) -> SendRun:
    """The measured path: sequential send_many calls of `batch` requests, one mailer (as one process has)."""
    mailer = make_mailer(settings)
    statuses: Counter[str] = Counter()
    batches: list[float] = []
    before, _ = sink.received
    meter = CpuMeter(pids)
    started = time.perf_counter()
    try:
        for at in range(0, len(requests), batch):
            t0 = time.perf_counter()
            outcomes = await send_many(sessionmaker, mailer, settings, requests[at : at + batch])
            batches.append(time.perf_counter() - t0)
            statuses.update(o.status for o in outcomes)
        wall = time.perf_counter() - started
        cpu = meter.pct()
    finally:
        await mailer.aclose()
    delivered = sink.received[0] - before
    return SendRun(len(requests), delivered, wall, cpu, batches, dict(statuses))


async def run_raw(
    messages: Sequence[Outgoing], connections: int, host: str, port: int, sink: Sink, pids: dict[str, int]
) -> SendRun:
    """The baseline: `connections` aiosmtplib clients, each connected once and reused, taking turns at
    the prepared messages (MAIL, RCPT, DATA per message, as the product's mailer does)."""
    local_hostname = await asyncio.to_thread(socket.getfqdn)
    queue = iter(messages)
    before, _ = sink.received
    meter = CpuMeter(pids)
    started = time.perf_counter()

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=local_hostname, timeout=30)
        await smtp.connect()
        try:
            for message in queue:  # a shared iterator: a free connection takes the next message
                await smtp.sendmail(message.sender, list(message.recipients), message.data)
        finally:
            await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - started
    cpu = meter.pct()
    delivered = sink.received[0] - before
    return SendRun(len(messages), delivered, wall, cpu)


def ratio(measured: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    return round(measured["emails_per_s"] / baseline["emails_per_s"], 3) if baseline["emails_per_s"] else None


def median_run(runs: Sequence[SendRun]) -> dict[str, Any]:
    """The run with the median emails/s, plus every round's emails/s."""
    ordered = sorted(runs, key=lambda r: r.emails_per_s)
    chosen = ordered[len(ordered) // 2].summary()
    chosen["rounds_emails_per_s"] = [round(r.emails_per_s, 1) for r in runs]
    return chosen


async def bench_delivery(
    stack: Stack, settings: NurtureSettings, sink: Sink, args: argparse.Namespace
) -> dict[str, Any]:
    engine = make_engine(settings.database_url, pool_size=4)  # as `funnelstream nurture` builds it
    sessionmaker = make_sessionmaker(engine)
    pids = {"bench": os.getpid(), "sink": sink.proc.pid or 0, **stack.pids}
    runs: dict[str, list[SendRun]] = {"measured": [], "raw_same_connections": [], "raw_one_connection": []}
    sizes: list[int] = []
    budget_end = time.monotonic() + args.budget
    last_round = 0.0
    warmup = min(args.batch, args.emails)
    try:
        # A running process has its database connections, caches and compiled patterns: warm both paths first.
        progress(f"delivery: warm-up, {warmup} emails through each path (not counted)")
        warm = [make_request(i, "warmup") for i in range(warmup)]
        await run_product(sessionmaker, settings, warm, warmup, sink, pids)
        await run_raw(raw_messages(warm, settings), 1, settings.smtp_host, settings.smtp_port, sink, pids)
        for round_no in range(args.rounds):
            if round_no and time.monotonic() + last_round > budget_end:
                progress(f"delivery: stopping after {round_no} round(s): another would pass --budget {args.budget:g}s")
                break
            round_start = time.monotonic()
            requests = [make_request(i, f"r{round_no}") for i in range(args.emails)]
            messages = raw_messages(requests, settings)
            sizes = [len(m.data) for m in messages]
            order = list(runs)
            order = order[round_no % 3 :] + order[: round_no % 3]  # rotate: no side always runs first
            for which in order:
                progress(f"delivery round {round_no + 1}/{args.rounds}: {which}")
                n = settings.smtp_connections if which == "raw_same_connections" else 1
                work = (
                    run_product(sessionmaker, settings, requests, args.batch, sink, pids)
                    if which == "measured"
                    else run_raw(messages, n, settings.smtp_host, settings.smtp_port, sink, pids)
                )
                try:
                    result = await asyncio.wait_for(work, args.run_timeout)
                except TimeoutError:
                    raise RuntimeError(f"{which} did not finish within --run-timeout {args.run_timeout:g}s") from None
                runs[which].append(result)
                progress(
                    f"  {which}: {result.delivered}/{result.emails} delivered in {result.wall_s:.2f}s "
                    f"= {result.emails_per_s:.0f}/s, cpu {result.cpu_pct}"
                )
            last_round = time.monotonic() - round_start
        async with sessionmaker() as session:
            rows = await session.execute(text("SELECT status, count(*) FROM email_sends GROUP BY status"))
            email_sends = {str(r[0]): int(r[1]) for r in rows}
    finally:
        await engine.dispose()
    measured, same, one = (median_run(runs[k]) for k in runs)
    complete = all(r.delivered == r.emails for rs in runs.values() for r in rs)
    complete = complete and email_sends == {"sent": args.emails * len(runs["measured"]) + warmup}
    return {
        "measured": {
            "path": "send_many: claim in email_sends, SMTP over SmtpMailer's pool, record outcomes",
            **measured,
        },
        "raw_same_connections": {
            "path": f"aiosmtplib sendmail over {settings.smtp_connections} reused connection(s), messages prebuilt",
            "connections": settings.smtp_connections,
            **same,
        },
        "raw_one_connection": {"path": "aiosmtplib sendmail over ONE reused connection, messages prebuilt", **one},
        "ratio": ratio(measured, same),
        "ratio_basis": "raw_same_connections",
        "ratio_one_connection": ratio(measured, one),
        # paired by round: each product run ÷ the same round's same-connections baseline (seconds apart)
        "rounds_ratio": [
            round(m.emails_per_s / b.emails_per_s, 3) if b.emails_per_s else None
            for m, b in zip(runs["measured"], runs["raw_same_connections"], strict=True)
        ],
        "email_sends_rows": email_sends,
        "warmup_emails": warmup,
        "message_bytes_mean": round(statistics.fmean(sizes)) if sizes else 0,
        "rounds": len(runs["measured"]),
        "complete": complete,
    }


# -- scheduler lateness ------------------------------------------------------------------------------------
class TimedScheduler(Scheduler):
    """The real scheduler; notes each due row its round ran and when that round's transaction committed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (round start, round committed, rows handled, due_at of each row run)
        self.rounds: list[tuple[datetime, datetime, int, list[datetime]]] = []
        self.rows_done = 0
        self._due: list[datetime] = []

    async def run_due(self, now: datetime | None = None) -> int:
        self._due = []
        started = datetime.now(UTC)
        handled = await super().run_due(now)  # returns after its transaction committed
        if handled:
            self.rounds.append((started, datetime.now(UTC), handled, self._due))
            self.rows_done += handled
        return handled

    async def _run(self, session: AsyncSession, d: DueStep, *args: Any, **kwargs: Any) -> None:
        self._due.append(d.due_at)
        await super()._run(session, d, *args, **kwargs)


def wait_then_audience(action: str) -> Definition:
    """`wait 1 min`, then add the lead to (or remove it from) an audience: a step that sends nothing."""
    return Definition.model_validate(
        {
            "trigger": {"kind": "event", "event": "Bench Waited"},
            "steps": [
                {"id": "wait", "type": "wait", "duration": "PT1M"},
                {"id": "tag", "type": "update_audience", "audience": "bench-waited", "action": action},
            ],
        }
    )


ENROLLMENT_COLUMNS = ["id", "sequence_id", "version", "lead_id", "status", "step_index", "steps_taken",
                      "cause_event_id", "entered_at", "updated_at"]  # fmt: skip


async def insert_waiting(
    database_url: str, sequence_id: uuid.UUID, rows: int, lead: float, spread: float
) -> tuple[list[datetime], float]:
    """Leads, enrollments at step 1 (past the wait) and their due rows; returns the due times and how many
    seconds before the first the rows were committed (negative: the insert was late)."""
    conn = await asyncpg.connect(to_libpq_url(database_url))
    try:
        leads = [uuid.uuid4() for _ in range(rows)]
        enrollments = [uuid.uuid4() for _ in range(rows)]
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "leads",
            columns=["lead_id", "user_id", "email", "traits"],
            records=[(lead_id, f"wait-{i}", f"wait-{i}@inbox.example", "{}") for i, lead_id in enumerate(leads)],
        )
        await conn.copy_records_to_table(
            "enrollments",
            columns=ENROLLMENT_COLUMNS,
            records=[
                (e, sequence_id, 1, lead_id, "active", 1, 1, uuid.uuid4(), now - timedelta(minutes=1), now)
                for e, lead_id in zip(enrollments, leads, strict=True)
            ],
        )
        first_due = datetime.now(UTC) + timedelta(seconds=lead)
        due = [first_due + timedelta(seconds=i * spread / rows) for i in range(rows)]
        await conn.copy_records_to_table(
            "scheduled_steps",
            columns=["enrollment_id", "step_index", "kind", "due_at", "status"],
            records=[(e, 1, "step", at, "due") for e, at in zip(enrollments, due, strict=True)],
        )
        await conn.execute("ANALYZE leads; ANALYZE enrollments; ANALYZE scheduled_steps")
        return due, (first_due - datetime.now(UTC)).total_seconds()
    finally:
        await conn.close()


async def bench_scheduler(stack: Stack, settings: NurtureSettings, args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(settings.database_url, pool_size=4)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            sequence_id = await queries.create(
                session, name="bench-wait", description="", message_class="marketing", topic=None, exempt=False,
                definition=wait_then_audience(args.audience_action),
            )  # fmt: skip
            assert sequence_id is not None
            await queries.set_status(session, sequence_id, "active")
        progress(f"scheduler: writing {args.rows} leads, enrollments and due rows")
        t0 = time.perf_counter()
        due, head_start = await insert_waiting(settings.database_url, sequence_id, args.rows, args.lead, args.spread)
        setup_s = time.perf_counter() - t0
        progress(f"  written in {setup_s:.1f}s; first row due in {head_start:.1f}s, the last {args.spread:g}s later")
        scheduler = TimedScheduler(
            sessionmaker,
            SequenceMessenger(settings, sessionmaker, make_mailer(settings)),  # never called: nothing is sent
            policy=SendPolicy(
                settings.quiet_hours_start, settings.quiet_hours_end, timedelta(hours=settings.frequency_cap_hours)
            ),
            batch=settings.scheduler_batch,
        )
        meter = CpuMeter({"bench": os.getpid(), **{k: v for k, v in stack.pids.items() if k == "postgres"}})
        loop = asyncio.create_task(scheduler_loop(scheduler, settings.scheduler_poll_seconds), name="scheduler")
        deadline = due[-1] + timedelta(seconds=args.drain_timeout)
        next_note = time.monotonic() + 5
        while scheduler.rows_done < args.rows and datetime.now(UTC) < deadline and not loop.done():
            await asyncio.sleep(0.1)
            if time.monotonic() >= next_note:
                next_note += 5
                late = (datetime.now(UTC) - scheduler.rounds[-1][3][-1]).total_seconds() if scheduler.rounds else 0
                progress(f"  {scheduler.rows_done}/{args.rows} rows done; last done row {late:.2f}s after it was due")
        stopped_at = datetime.now(UTC)
        cpu = meter.pct()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        db = await done_lateness(sessionmaker)
    finally:
        await engine.dispose()
    return scheduler_summary(scheduler, args, due, head_start, setup_s, stopped_at, cpu, db)


async def done_lateness(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Cross-check from the table: done_at (the round's transaction START, now()) minus due_at."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT count(*), percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY late), max(late) "
                    "FROM (SELECT extract(epoch FROM done_at - due_at) AS late FROM scheduled_steps "
                    "WHERE status = 'done') d"
                )
            )
        ).one()
        members = await session.scalar(text("SELECT count(*) FROM audience_members WHERE audience = 'bench-waited'"))
    p = row[1] or [0, 0, 0]
    return {
        "rows_done": int(row[0]),
        "p50_ms": round(float(p[0]) * 1000, 1),
        "p90_ms": round(float(p[1]) * 1000, 1),
        "p99_ms": round(float(p[2]) * 1000, 1),
        "max_ms": round(float(row[2] or 0) * 1000, 1),
        "audience_members": int(members or 0),
    }


def scheduler_summary(
    scheduler: TimedScheduler,
    args: argparse.Namespace,
    due_at: list[datetime],
    head_start: float,
    setup_s: float,
    stopped_at: datetime,
    cpu: dict[str, float],
    db: dict[str, Any],
) -> dict[str, Any]:
    late: list[float] = []
    for _, committed, _, due in scheduler.rounds:
        late.extend((committed - d).total_seconds() for d in due)
    done = len(late)
    # Rows never run before the deadline count with the least lateness they have: (stop - due), a lower bound.
    undone = len(due_at) - done
    if undone > 0:
        left = Counter(due_at)
        left.subtract(d for *_, due in scheduler.rounds for d in due)
        late.extend(max(0.0, (stopped_at - d).total_seconds()) for d, n in left.items() for _ in range(max(0, n)))
    rounds_s = [(c - s).total_seconds() for s, c, _, _ in scheduler.rounds]
    busy = (scheduler.rounds[-1][1] - scheduler.rounds[0][0]).total_seconds() if scheduler.rounds else 0.0
    return {
        "path": "scheduler_loop(Scheduler(...)) with SequenceMessenger, in this process",
        "step_after_wait": f"update_audience {args.audience_action}",
        "rows": args.rows,
        "due": (
            f"all at one instant, {args.lead:g}s after the rows were written"
            if args.spread == 0
            else f"evenly over {args.spread:g}s starting {args.lead:g}s after the rows were written"
        ),
        "method": (
            "TimedScheduler subclasses the product's Scheduler: _run notes each due row's due_at, run_due stamps the "
            "wall clock after super().run_due returned (its transaction committed); lateness = that commit time - "
            "due_at. Rows not run when the run stopped count as (stop - due_at), a lower bound."
        ),
        "rows_done": done,
        "complete": undone == 0,
        "lateness_p50_ms": round(percentile(late, 50) * 1000, 1),
        "lateness_p90_ms": round(percentile(late, 90) * 1000, 1),
        "lateness_p99_ms": round(percentile(late, 99) * 1000, 1),
        "lateness_max_ms": round(max(late, default=0.0) * 1000, 1),
        "rows_per_s": round(done / busy, 1) if busy else 0.0,
        "arrival_rows_per_s": round(args.rows / args.spread, 1) if args.spread else None,
        "rounds": len(scheduler.rounds),
        "rows_per_round_mean": round(done / len(scheduler.rounds), 1) if scheduler.rounds else 0,
        "round_p50_ms": round(percentile(rounds_s, 50) * 1000, 1),
        "round_p99_ms": round(percentile(rounds_s, 99) * 1000, 1),
        "setup_s": round(setup_s, 2),
        "rows_written_before_first_due_s": round(head_start, 2),
        "cpu_pct": cpu,
        "done_at_lateness": {
            "basis": "scheduled_steps.done_at (= now() of the round's transaction, i.e. its START) - due_at",
            **db,
        },
    }


# -- driver ------------------------------------------------------------------------------------------------
async def bench(stack: Stack, sink: Sink, args: argparse.Namespace) -> dict[str, Any]:
    settings = NurtureSettings(
        database_url=stack.database_url,
        kafka_bootstrap_servers="127.0.0.1:9",  # nothing here talks to the broker
        secret_key=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_connections=args.connections,
        mail_from="Acme News <news@acme.example>",
        public_base_url=BASE_URL,
        scheduler_batch=args.scheduler_batch,
        scheduler_poll_seconds=args.poll_seconds,
    )
    delivery = await bench_delivery(stack, settings, sink, args) if args.emails and args.rounds else None
    scheduler = await bench_scheduler(stack, settings, args) if args.rows else None
    passed: dict[str, bool | None] = {
        "ratio_to_raw_same_connections": (
            delivery["ratio"] >= TARGETS["ratio_to_raw_same_connections"] if delivery and delivery["ratio"] else None
        ),
        "lateness_p99_s": (
            scheduler["complete"] and scheduler["lateness_p99_ms"] < TARGETS["lateness_p99_s"] * 1000
            if scheduler
            else None
        ),
    }
    return {
        "benchmark": "nurture",
        "config": {
            "emails": args.emails,
            "batch": args.batch,
            "smtp_connections": settings.smtp_connections,
            "rounds_requested": args.rounds,
            "budget_s": args.budget,
            "dkim": False,
            "sink": "aiosmtpd Controller (uvloop) in a separate spawned process; counts messages; shares the cores",
            "client_loop": "uvloop (as funnelstream processes run), one process for product and baselines",
            "engine_pool_size": 4,
            "rows": args.rows,
            "spread_s": args.spread,
            "lead_s": args.lead,
            "drain_timeout_s": args.drain_timeout,
            "scheduler_batch": settings.scheduler_batch,
            "scheduler_poll_s": settings.scheduler_poll_seconds,
            "db": stack.db,
            "broker": stack.broker,
            "machine": machine(),
        },
        "delivery": delivery,
        "scheduler": scheduler,
        "targets": TARGETS,
        "pass": {**passed, "all": all(v is True for v in passed.values())},
        "aims": AIMS,
        "aims_met": {
            "emails_per_s_per_process": (
                delivery["measured"]["emails_per_s"] >= AIMS["emails_per_s_per_process"] if delivery else None
            )
        },
        "complete": (delivery is None or delivery["complete"]) and (scheduler is None or scheduler["complete"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--emails", type=int, default=5_000, help="emails per delivery run (0 skips delivery)")
    add("--batch", type=int, default=200, help="requests per send_many call")
    add("--connections", type=int, default=DEFAULT_CONNECTIONS, help="FUNNELSTREAM_SMTP_CONNECTIONS (both sides)")
    add("--rounds", type=int, default=3, help="delivery rounds (product, raw same connections, raw one); medians")
    add("--budget", type=float, default=90.0, help="no new delivery round starts if it would end past this (s)")
    add("--run-timeout", type=float, default=120.0, help="seconds one delivery run may take")
    add("--rows", type=int, default=100_000, help="due scheduler rows (0 skips the scheduler part)")
    add("--spread", type=float, default=60.0, help="the rows fall due evenly over this many seconds (0: at once)")
    add("--lead", type=float, default=5.0, help="seconds from writing the rows to the first due time")
    add("--drain-timeout", type=float, default=20.0, help="seconds after the last due time before giving up")
    add(
        "--audience-action",
        choices=("add", "remove"),
        default="add",
        help="the step after the wait: add (joins, then checks audience-triggered sequences) or remove (not a member)",
    )
    add("--scheduler-batch", type=int, default=DEFAULT_SCHEDULER_BATCH, help="FUNNELSTREAM_SCHEDULER_BATCH")
    add("--poll-seconds", type=float, default=DEFAULT_POLL_S, help="FUNNELSTREAM_SCHEDULER_POLL_SECONDS")
    add("--verbose", action="store_true", help="FunnelStream's own INFO logs on stderr")
    args = parser.parse_args()
    setup_logging(args.verbose)
    sink = Sink()
    try:
        with contextlib.redirect_stdout(sys.stderr), components(broker=False) as stack:
            progress(f"starting the SMTP sink on 127.0.0.1:{sink.port}")
            sink.start()
            result = run_loop(bench(stack, sink, args))
    except Exception as exc:
        print(json.dumps({"benchmark": "nurture", "error": f"{type(exc).__name__}: {exc}"}))
        raise
    finally:
        sink.stop()
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
