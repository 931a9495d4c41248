"""The README opens with the two commands, CI runs the second, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import setting_env_names

ROOT = Path(__file__).resolve().parent.parent


def first_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_readme_opens_with_run_and_test_commands() -> None:
    run, test = first_commands()
    assert run.endswith("funnelstream dev") and "pip install" in run
    assert test.endswith("pytest") and "pip install" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = first_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


def test_every_setting_is_in_the_configuration_table() -> None:
    text = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(FUNNELSTREAM_[A-Z_]+)`", text, flags=re.MULTILINE))
    assert documented == setting_env_names()
