"""bench/report.py renders bench/README.md from the benchmarks' raw JSON: the renderer, on the real JSON of a
quick consume run (tests/bench/consume_sample.json: `bench/consume.py --events 3000 --rounds 1`), a benchmark
it does not know, a failed one, and its command line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Loaded from its path: bench/ scripts are scripts (mypy knows this one as `report`), not a package.
_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
assert _spec is not None and _spec.loader is not None
report: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)
benchmarks, get, last_json, render = report.benchmarks, report.get, report.last_json, report.render

SAMPLE = json.loads((Path(__file__).parent / "consume_sample.json").read_text())
RUN: dict[str, Any] = {
    "date": "2026-11-23 18:00 UTC",
    "command": "python bench/report.py",
    "seconds": 640.2,
    "machine": {"cores": 2, "memory_gb": 23.5, "cpu": "AMD EPYC 7B13", "platform": "Linux-6.1", "python": "3.11.7"},
    "benchmarks": {"consume": {"command": "python bench/consume.py", "seconds": 21.5, "exit_code": 0}},
}


def table_row(page: str, figure: str) -> list[str]:
    line = next(line for line in page.splitlines() if f"| {figure} |" in line)
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_figures_and_same_run_ratios_come_from_the_json() -> None:
    page = render({"consume": SAMPLE}, RUN)
    row = table_row(page, "scoring consumer, events/s (start → drained)")
    assert row[0] == "[consume](report/consume.json)"
    assert row[2:5] == ["414", "2,114", "0.196"]  # measured, baseline, the run's own ratio
    assert row[5] == "complete"
    assert table_row(page, "scoring consumer, events/s (steady)")[2:5] == ["494", "12,709", "0.039"]


def test_date_machine_command_and_baseline_configurations_are_stated() -> None:
    page = render({"consume": SAMPLE}, RUN)
    assert (
        "Generated 2026-11-23 18:00 UTC by `python bench/report.py` on 2 cores, 23.5 GB memory, AMD EPYC 7B13" in page
    )
    assert "do not edit by hand" in page
    assert "- **consume**: `python bench/consume.py`, 21.5 s, exit 0" in page
    assert "baseline: aiokafka getmany + one asyncpg unnest upsert per batch + offset commit" in page
    assert "measured: ConsumerRunner + ScoringHandler" in page
    assert "batch_size 500" in page and "embedded PostgreSQL (fsync=on) 18.6" in page


def test_unknown_failed_and_incomplete_benchmarks_still_show() -> None:
    chaos = {"benchmark": "chaos", "config": {"kills": 5}, "ratio_recovery": 0.8, "nested": {"ratio_x": 1.25}}
    failed = {"benchmark": "ingest", "error": "wrk not found on PATH"}
    incomplete = {**SAMPLE, "complete": False}
    page = render({"chaos": chaos, "ingest": failed, "consume": incomplete}, RUN)
    assert table_row(page, "ratio_recovery")[4] == "0.8"
    assert table_row(page, "nested.ratio_x")[4] == "1.25"
    assert "| [ingest](report/ingest.json) | – | – | – | – | **error**: wrk not found on PATH |" in page
    assert "**incomplete**" in page


def test_paths_reach_into_lists_and_missing_values_are_dashes() -> None:
    data = {"measured": {"track": [{"rps": 1}, {"rps": 2}]}}
    assert get(data, "measured.track.0.rps") == 1 and get(data, "measured.track.-1.rps") == 2
    assert get(data, "measured.nothing") is None and get(data, "measured.track.5.rps") is None
    page = render({"consume": {"benchmark": "consume", "complete": True}}, RUN)
    assert table_row(page, "scoring consumer, batch p99 ms")[2:5] == ["–", "–", "–"]


def test_the_benchmarks_json_is_the_last_object_on_stdout() -> None:
    assert last_json('progress\n{"a": 1}\n{"benchmark": "x"}\n') == {"benchmark": "x"}
    assert last_json("no json here\n[1, 2]\n") is None


def test_every_bench_script_is_found_and_the_command_has_help() -> None:
    assert {"consume", "ingest", "scoring", "nurture"} <= set(benchmarks())
    assert "report" not in benchmarks() and "_stack" not in benchmarks()
    shown = subprocess.run([sys.executable, "bench/report.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "--render-only" in shown.stdout and "--only" in shown.stdout


def test_the_command_runs_each_script_keeps_its_json_and_renders(tmp_path: Path, monkeypatch: Any) -> None:
    """The whole command on two stand-in scripts (one fine, one failing), in a scratch bench folder."""
    (tmp_path / "fast.py").write_text(
        'import json, sys\nprint("progress", file=sys.stderr)\n'
        'print(json.dumps({"benchmark": "fast", "config": {"n": 1}, "ratio": 0.5, "complete": True}))\n'
    )
    (tmp_path / "broken.py").write_text("import sys\nprint('oops')\nsys.exit(3)\n")
    (tmp_path / "_helper.py").write_text("raise SystemExit('a helper is not a benchmark')\n")
    for name, path in (("BENCH", tmp_path), ("REPORT", tmp_path / "report"), ("LOGS", tmp_path / "results")):
        monkeypatch.setattr(report, name, path)
    assert report.main(["--only", "fast,broken"]) == 0
    assert json.loads((tmp_path / "report" / "fast.json").read_text())["ratio"] == 0.5
    assert json.loads((tmp_path / "report" / "broken.json").read_text())["error"] == "no JSON on stdout (exit 3)"
    run = json.loads((tmp_path / "report" / "run.json").read_text())
    assert run["benchmarks"]["broken"]["exit_code"] == 3 and run["machine"]["cores"]
    assert (tmp_path / "results" / "fast.stderr").read_text() == "progress\n"
    page = (tmp_path / "README.md").read_text()
    assert table_row(page, "ratio")[4] == "0.5" and "**error**: no JSON on stdout (exit 3)" in page
    assert "_helper" not in page
    # Rendering again from the kept files gives the same page.
    assert report.main(["--render-only"]) == 0 and (tmp_path / "README.md").read_text() == page


def test_without_results_the_page_says_how_to_make_them() -> None:
    page = render({}, {"benchmarks": {}})
    assert "Not generated from a run yet" in page and "no results yet" in page
