"""Child processes that die with their parent, and pidfiles that a later start can clean up."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _death_signal(sig: int) -> Callable[[], None]:
    """preexec_fn that asks Linux to send `sig` to the child when its parent dies (even by SIGKILL).

    It runs after subprocess switched user ids, so the setting survives the credential change.
    """

    def set_pdeathsig() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig)
            # The parent may have died between fork and prctl: then no signal would ever come.
            if os.getppid() == 1:
                os.kill(os.getpid(), sig)

    return set_pdeathsig


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    death_signal: int = signal.SIGTERM,
    user: int | None = None,
    group: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that is signalled when this process dies. Call from the main thread only:
    Linux ties the parent-death signal to the thread that forked."""
    out: IO[bytes] = log_file.open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - argv built from our own paths, never from input
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_death_signal(death_signal),  # noqa: PLW1509 - needed for PR_SET_PDEATHSIG
            user=user,
            group=group,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches only `dev`, which stops children in order
        )
    finally:
        out.close()


class PidFile:
    """A pid file; a leftover from a killed run is detected and cleaned at the next start."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def live_process(self, must_contain: str) -> psutil.Process | None:
        """The process named in the file if it still runs and its command line contains `must_contain`."""
        pid = self.read()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if must_contain in " ".join(proc.cmdline()):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        return None

    def clean_stale(self, must_contain: str, sig: int = signal.SIGTERM) -> None:
        """Stop a leftover process of ours named in the file, then remove the file."""
        proc = self.live_process(must_contain)
        if proc is not None:
            log.warning("stopping leftover process %d from an earlier run (%s)", proc.pid, self.path.name)
            terminate(proc, sig)
        elif self.path.exists():
            log.info("removing stale pidfile %s", self.path)
        self.remove()


def terminate(proc: psutil.Process | subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL."""
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return
    except (psutil.TimeoutExpired, subprocess.TimeoutExpired):
        log.warning("process %d ignored signal %d for %.0fs; killing it", proc.pid, sig, timeout)
        try:
            proc.kill()
            proc.wait(5)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
