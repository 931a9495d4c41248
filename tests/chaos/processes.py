"""Consumer processes of the real `funnelstream` command, started, killed and restarted by fault tests."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from funnelstream.embedded import free_port
from tests.funnelstream.test_dev import EXE, clean_env


@dataclass
class Replica:
    role: str  # scoring, nurture
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        env = {**self.env, "FUNNELSTREAM_HEALTH_PORT": str(free_port())}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own command
                [EXE, self.role], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or the OOM killer takes the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Fleet:
    replicas: list[Replica] = field(default_factory=list)

    @classmethod
    def of(cls, roles: list[str], env: dict[str, str], logs: Path) -> Fleet:
        return cls([Replica(role, clean_env(**env), logs / f"{role}-{i}.log") for i, role in enumerate(roles)])

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {r.log.name}\n{r.log.read_text(errors='replace')[-3000:]}" for r in self.replicas)
