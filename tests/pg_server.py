"""A throw-away PostgreSQL server for the test suite.

Uses the PostgreSQL binaries on the machine (Debian's ``postgresql`` package, or any
``initdb`` on PATH, or ``$DUPFINDER_PG_BIN``). PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user through ``runuser``. The superuser
has a password full of URL-special characters, so every PostgreSQL test also proves that
such passwords survive URL building.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL

SUPERUSER = "dupfinder_test"
PASSWORD = "p@ss:w/rd%#?&= x"


def _bin_dir() -> Path:
    env = os.environ.get("DUPFINDER_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "no PostgreSQL server binaries found: install Debian's 'postgresql' package "
        "(scripts/test does) or set DUPFINDER_TEST_PG_URL to an existing server"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """initdb + pg_ctl start/stop of a private cluster on a free local port."""

    def __init__(self, durable: bool = False) -> None:
        """``durable``: commits are written to the WAL before they return (needed when a
        test stops the server abruptly and checks that nothing committed was lost)."""
        self.durable = durable
        self.bin = _bin_dir()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="dupfinder-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr}{proc.stdout}{log}")

    def init(self) -> None:
        """Create the cluster with a password-protected superuser."""
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C.UTF-8")
        pwfile.unlink()

    def start(self) -> None:
        """Start (or restart) the server on its port; waits until it accepts connections."""
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c full_page_writes=off -c max_connections=300 "
                f"-c synchronous_commit={'on' if self.durable else 'off'}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` simulates a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        """Stop if running and remove every file of the cluster."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> URL:
        """A URL for the superuser (password included) to ``database``."""
        return URL.create("postgresql+psycopg2", username=SUPERUSER, password=PASSWORD,
                          host="127.0.0.1", port=self.port, database=database)
