"""A throwaway PostgreSQL cluster: initdb into a temp dir, served on a free loopback port
(run as the `postgres` user when we are root, which PostgreSQL requires); it can be stopped
and started again on the same data (the chaos suite's database outage)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from glob import glob
from pathlib import Path

from ddb_bridge.services.processes import free_port


def postgres_bindir() -> Path | None:
    for candidate in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    """A throwaway cluster in a temp dir on a free port; can be stopped and started again."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ddb-bridge-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.sockdir.mkdir()
        # PostgreSQL refuses to run as root: run it as the `postgres` user when we are root.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            for path in (self.root, self.sockdir):
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, *cmd: str) -> None:
        argv = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-w",
            "-l",
            str(self.root / "log"),
            "-o",
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-w", "-m", "fast", "stop")

    def destroy(self) -> None:
        """Stop without a checkpoint (`immediate`) and delete everything: the data is thrown
        away."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.datadir), "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
