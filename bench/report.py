"""Run every benchmark under bench/ at its default scale and render bench/README.md from the results.

Each benchmark runs in its own process (`python bench/<name>.py`, no arguments: its defaults) and prints
one JSON object; that raw JSON is kept in bench/report/<name>.json beside the rendered README, with
bench/report/run.json (date, machine, command, each run's time and exit code). bench/README.md is
generated from those files and never edited by hand; bench/METHODS.md says how each benchmark works.

    .venv/bin/python bench/report.py                  # everything (default scale: under 15 minutes)
    .venv/bin/python bench/report.py --only ingest    # run one or a few, keep the others' last results
    .venv/bin/python bench/report.py --render-only    # re-render README.md from bench/report/*.json

Progress and each benchmark's stderr go to the terminal's stderr and bench/results/<name>.stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPORT = BENCH / "report"
LOGS = BENCH / "results"
NOT_BENCHMARKS = {"report"}

# Headline rows per known benchmark: (figure, measured path, baseline path, same-run ratio path).
# Paths are dot-separated keys (list items by index, -1 the last) into the benchmark's JSON; missing values
# show "–". COMPUTED: the ratio is measured ÷ baseline of the row (both from the same run).
Row = tuple[str, str | None, str | None, str | None]
COMPUTED = "measured/baseline"
FIGURES: dict[str, list[Row]] = {
    "analytics": [
        ("funnel report p50 ms vs raw stage_history scan", "queries.funnel.p50_ms",
         "queries.raw_history_funnel.p50_ms", "ratios.funnel_p50_to_raw_history_scan"),
        ("funnel report p95 ms", "queries.funnel.p95_ms", None, None),
        ("cohorts report p95 ms", "queries.cohorts.p95_ms", None, None),
        ("backfill, leads/s", "backfill.leads_per_second", None, None),
    ],
    "consume": [
        ("scoring consumer, events/s (start → drained)", "measured.events_per_s", "baseline.events_per_s", "ratio"),
        ("scoring consumer, events/s (steady)", "measured.steady_events_per_s", "baseline.steady_events_per_s",
         "ratio_steady"),
        ("scoring consumer, batch p99 ms", "measured.batch_p99_ms", "baseline.batch_p99_ms", None),
    ],
    "ingest": [
        ("POST /v1/track requests/s, fewest connections", "measured.track.0.requests_per_s",
         "baseline.bare_endpoint_track.0.requests_per_s", COMPUTED),
        ("POST /v1/track requests/s, most connections", "measured.track.-1.requests_per_s",
         "baseline.bare_endpoint_track.-1.requests_per_s", COMPUTED),
        ("POST /v1/track p99 ms, fewest connections", "measured.track.0.latency_p99_ms",
         "baseline.bare_endpoint_track.0.latency_p99_ms", None),
        ("POST /v1/batch events/s, most connections, vs raw produce", "measured.batch.-1.events_per_s",
         "baseline.raw_produce.windowed.events_per_s", COMPUTED),
    ],
    "scoring": [
        ("`funnelstream scoring` ×1, events/s", "throughput.one_process.events_per_s",
         "throughput.baseline.events_per_s", "throughput.ratio_to_baseline"),
        ("`funnelstream scoring` ×2 vs ×1, events/s", "throughput.two_processes.events_per_s",
         "throughput.one_process.events_per_s", "throughput.scaling_ratio_2_vs_1"),
        ("with vs without a predictive model, events/s", "predictive_model.with_model.events_per_s",
         "predictive_model.without_model.events_per_s", "predictive_model.ratio_with_to_without"),
        ("end to end, ingest → lead visible, p99 ms", "latency.e2e_p99_ms", None, None),
    ],
    "nurture": [
        ("email delivery, emails/s (same connections)", "delivery.measured.emails_per_s",
         "delivery.raw_same_connections.emails_per_s", "delivery.ratio"),
        ("email delivery, emails/s (vs one connection)", "delivery.measured.emails_per_s",
         "delivery.raw_one_connection.emails_per_s", "delivery.ratio_one_connection"),
        ("scheduler lateness p99 ms", "scheduler.lateness_p99_ms", None, None),
    ],
    "hotlead": [
        ("other leads' latency p99 ms, hot lead vs even traffic", "hot.others.p99_ms", "baseline.others.p99_ms",
         "ratio_others_p99_hot_to_baseline"),
        ("hot lead's own latency p99 ms", "hot.hot_lead.p99_ms", None, None),
    ],
}  # fmt: skip


def benchmarks() -> list[str]:
    """Every benchmark script: bench/*.py except helpers (leading underscore) and this report."""
    return sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_") and p.stem not in NOT_BENCHMARKS)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gb = None
    return {
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "cpu": cpu,
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def last_json(stdout: str) -> dict[str, Any] | None:
    """The benchmark's one JSON object: the last stdout line that parses as an object."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def run_one(name: str, timeout: float) -> dict[str, Any]:
    """Run bench/<name>.py with its defaults; keep its JSON in bench/report/ and its stderr in bench/results/."""
    LOGS.mkdir(exist_ok=True)
    command = [sys.executable, str(BENCH / f"{name}.py")]
    print(f"[report] {name}: {shlex.join(['python', f'bench/{name}.py'])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with (LOGS / f"{name}.stderr").open("w") as log:
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout, check=False)
            stdout, code = done.stdout, done.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or "", None
    seconds = round(time.monotonic() - started, 1)
    result = last_json(stdout)
    if result is None:
        result = {"benchmark": name, "error": "timed out" if code is None else f"no JSON on stdout (exit {code})"}
    (REPORT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"[report] {name}: {seconds}s, exit {code}", file=sys.stderr, flush=True)
    return {"command": f"python bench/{name}.py", "seconds": seconds, "exit_code": code}


def get(data: Any, path: str | None) -> Any:
    if path is None:
        return None
    for key in path.split("."):
        if isinstance(data, list) and key.lstrip("-").isdigit() and -len(data) <= int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return None
    if isinstance(data, dict) and len(data) == 1:  # e.g. a ratio per connection count: the first one
        return next(iter(data.values()))
    return data


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 3
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def ratio_rows(name: str, result: dict[str, Any]) -> list[Row]:
    """Rows of a benchmark this report does not know yet: every ratio it reports, two levels deep."""
    rows: list[Row] = []
    for key, value in result.items():
        inner = value.items() if isinstance(value, dict) else [("", value)]
        for sub, item in inner:
            path = f"{key}.{sub}" if sub else key
            if "ratio" in path and isinstance(item, int | float | dict) and not isinstance(item, bool):
                rows.append((path, None, None, path))
    return rows


def status(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"**error**: {fmt(result['error'])}"
    parts = []
    if "complete" in result:
        parts.append("complete" if result["complete"] else "**incomplete**")
    verdict = result.get("pass")
    if isinstance(verdict, dict):
        verdict = all(v is not False for v in verdict.values())
    if isinstance(verdict, bool):
        parts.append("targets met" if verdict else "**target missed**")
    return ", ".join(parts) or "–"


def baselines(result: dict[str, Any]) -> list[str]:
    """Every `path` the JSON describes (what each side ran), and the config without the machine."""
    found: list[str] = []

    def walk(data: Any, where: str) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if key == "path" and isinstance(value, str):
                    found.append(f"{where or 'measured'}: {value}")
                elif key != "config":
                    walk(value, f"{where}.{key}" if where else key)

    walk(result, "")
    config = {k: v for k, v in (result.get("config") or {}).items() if k != "machine"}
    if config:
        found.append("config: " + "; ".join(f"{k} {fmt(v)}" for k, v in config.items()))
    return found


def render(results: dict[str, dict[str, Any]], run: dict[str, Any]) -> str:
    """bench/README.md for `results` (benchmark name → its JSON) and `run` (what run.json holds)."""
    m = run.get("machine", {})
    lines = [
        "# Benchmark report",
        "",
        "<!-- Generated by bench/report.py from bench/report/*.json; do not edit by hand. -->",
        "",
        (
            f"Generated {run['date']} by `{run.get('command', 'python bench/report.py')}` on "
            f"{fmt(m.get('cores'))} cores, {fmt(m.get('memory_gb'))} GB memory, {fmt(m.get('cpu'))} "
            f"({fmt(m.get('platform'))}, Python {fmt(m.get('python'))}); total {fmt(run.get('seconds'))} s."
            if run.get("date")
            else "Not generated from a run yet: `python bench/report.py` runs every benchmark and fills this page."
        ),
        "",
        "Every ratio compares the product with its baseline **in the same run, on the same machine, with the same "
        "settings**: ratios, not absolute numbers, are the result (the load generator, the servers, the broker and "
        "PostgreSQL share the machine's cores). How each benchmark works and what each field means: "
        "[METHODS.md](METHODS.md). Raw results: [report/](report/).",
        "",
        "| benchmark | figure | measured | baseline | ratio (same run) | status |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    if not results:
        lines.append("| – | no results yet: run `python bench/report.py` | – | – | – | – |")
    for name, result in sorted(results.items()):
        rows = FIGURES.get(name) or ratio_rows(name, result)
        state = status(result)
        if "error" in result or not rows:
            lines.append(f"| [{name}](report/{name}.json) | – | – | – | – | {state} |")
            continue
        for i, (figure, measured, baseline, ratio) in enumerate(rows):
            values = [get(result, p) for p in (measured, baseline)]
            if ratio == COMPUTED:
                number = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
                values.append(round(values[0] / values[1], 3) if number and values[1] else None)
            else:
                values.append(get(result, ratio))
            cells = [fmt(v) for v in values]
            first = f"[{name}](report/{name}.json)" if i == 0 else ""
            lines.append(f"| {first} | {figure} | {' | '.join(cells)} | {state if i == 0 else ''} |")
    lines += ["", "## Runs and baseline configurations", ""]
    for name, result in sorted(results.items()):
        info = run.get("benchmarks", {}).get(name, {})
        lines.append(
            f"- **{name}**: `{info.get('command', f'python bench/{name}.py')}`, {fmt(info.get('seconds'))} s, "
            f"exit {fmt(info.get('exit_code'))}"
        )
        lines += [f"  - {fmt(item)}" for item in baselines(result)]
    return "\n".join(lines) + "\n"


def load(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    results = {}
    for name in names:
        path = REPORT / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks not to run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one benchmark may run")
    parser.add_argument("--render-only", action="store_true", help="only render README.md from bench/report/")
    args = parser.parse_args(argv)
    names = benchmarks()
    REPORT.mkdir(exist_ok=True)
    run_file = REPORT / "run.json"
    run: dict[str, Any] = json.loads(run_file.read_text()) if run_file.exists() else {"benchmarks": {}}
    if not args.render_only:
        chosen = [n for n in (args.only.split(",") if args.only else names) if n and n not in args.skip.split(",")]
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            parser.error(f"no benchmark named {', '.join(unknown)} (have: {', '.join(names)})")
        started = time.monotonic()
        for name in chosen:
            run["benchmarks"][name] = run_one(name, args.timeout)
        run.update(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=machine(),
            command="python bench/report.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
            seconds=round(time.monotonic() - started, 1),
        )
        run_file.write_text(json.dumps(run, indent=2) + "\n")
    (BENCH / "README.md").write_text(render(load(names), run))
    print(f"[report] wrote {BENCH / 'README.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
