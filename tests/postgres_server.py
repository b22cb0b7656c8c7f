"""A real PostgreSQL server for a test: Debian's `postgresql` package, its own data folder under a temporary
directory, a free port on 127.0.0.1 (no Unix socket), started and stopped by the test as a non-root user.

Debian keeps the server's programs in /usr/lib/postgresql/<version>/bin (not on PATH): the newest
version there is used, else initdb and pg_ctl on PATH.  As root, the server runs as ``nobody``
(PostgreSQL refuses to run as root) through ``runuser``; otherwise as the user running the tests.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab_server import free_port

SUPERUSER = "postgres"
INSTALL = "PostgreSQL's server programs (initdb, pg_ctl) are missing: install Debian's postgresql " \
          "(sudo apt-get install postgresql; `make test` does it when run as root)"


def server_bin() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: Debian's newest /usr/lib/postgresql/<version>/bin, else PATH's."""
    def version(path: Path):
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file() and
             (p / "pg_ctl").is_file()]
    if found:
        return max(found, key=version)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return Path(initdb).parent if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent else None


class PostgresServer:
    """``start()``, ``stop()``, ``url(database, user)``; ``createuser`` and ``createdb`` as an instructor runs them."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        # Not under pytest's tmp_path: its folders are private to root, and the server runs as `nobody`.
        self.base = Path(tempfile.mkdtemp(prefix="labkit-postgres-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = free_port()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self._as_server("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                        "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:  # 127.0.0.1 only, no Unix socket
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                       "fsync = off\n")
        with open(self.data / "pg_hba.conf", "w") as hba:  # trust, and only over TCP from this machine
            hba.write("host all all 127.0.0.1/32 trust\n")

    def _as_server(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """Run one of the server's programs as the server's user; fail with its output when it fails."""
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, cwd=self.base, capture_output=True, text=True, check=False,
                              env=dict(os.environ, LC_ALL="C"))
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                               f"{done.stderr[-3000:]}\n{log}")
        return done

    def client(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """createuser, createdb, psql ... against this server as its superuser."""
        command = [str(self.bin / program), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        self._as_server("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._as_server("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")

    def running(self) -> bool:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def url(self, database: str, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
