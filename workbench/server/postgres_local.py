"""A private PostgreSQL server in a directory: the lake's catalog for tests, benchmarks and the demo cluster.

Why a module and not a test helper: `workbench demo-cluster`, `benchmarks/lake.py` and the test fixture
all need the same thing (Debian's PostgreSQL binaries, `initdb` into a directory we own, a free port,
trust auth on 127.0.0.1 only, the unix socket inside that directory, `pg_ctl stop -m fast` at the end),
and three copies of that drift apart. `initdb` refuses to run as root, and our machines run as root, so
when we are root every server-side binary runs as an unprivileged user (`postgres` when Debian's package
created it, `nobody` otherwise) through util-linux's `setpriv`, with the directory handed to that user.
Clients (`psql`) run as us: they only speak TCP.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError

SUPERUSER = "postgres"  # the database role initdb creates, whatever the operating-system user is
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_SEARCH = "/usr/lib/postgresql/*/bin"
# unix sockets live at <dir>/.s.PGSQL.<port>; Linux allows 107 bytes in all
_SOCKET_PATH_MAX = 90


class PostgresMissing(WorkbenchError):
    """PostgreSQL's server binaries are not installed (`make postgres` installs Debian's package)."""


def binaries_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned directories
    (newest first), since Debian keeps the server binaries out of PATH."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob(_SEARCH), key=_version_key, reverse=True):
        if all((Path(candidate) / name).is_file() for name in _SERVER_BINARIES):
            return Path(candidate)
    raise PostgresMissing(
        f"PostgreSQL is not installed: no initdb/pg_ctl in PATH or {_SEARCH} "
        "(run `make postgres`, or apt-get install postgresql)"
    )


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server binaries: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresMissing("running as root, and no 'postgres' or 'nobody' user exists to run initdb as")


@dataclass
class LocalPostgres:
    """One running server. `dsn()` gives a libpq connection string, the form `--lake` takes."""

    root: Path
    port: int
    bin_dir: Path
    user: pwd.struct_passwd | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={SUPERUSER}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql (as a client, over TCP); its output, unaligned and without headers."""
        psql = self.bin_dir / "psql"
        exe = str(psql) if psql.is_file() else (shutil.which("psql") or "psql")
        done = subprocess.run(
            [exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname), "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise WorkbenchError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; its connection string."""
        name = name or f"wb_{uuid.uuid4().hex[:16]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and '_': {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.dsn(name)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected, nothing is lost); safe to call twice."""
        if not self.running():
            return
        _run_server_tool(
            self, [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60"]
        )


def _as_user(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--", *argv]


def _run_server_tool(pg: LocalPostgres, argv: list[str]) -> None:
    done = subprocess.run(
        _as_user(pg.user, argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=pg.root,  # the unprivileged user may not be able to enter our working directory
    )
    if done.returncode != 0:
        log = pg.log_path.read_text(errors="replace")[-2000:] if pg.log_path.exists() else ""
        raise WorkbenchError(
            f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()}\n{log}".rstrip()
        )


def _hand_over(root: Path, user: pwd.struct_passwd | None) -> None:
    """Give the directory to the server's user, and make sure that user can reach it at all."""
    if user is None:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    probe = subprocess.run(_as_user(user, ["test", "-w", str(root)]), check=False, timeout=30)
    if probe.returncode != 0:
        raise WorkbenchError(
            f"user {user.pw_name!r} cannot write {root} (a parent directory is closed to it); "
            "choose a directory under /tmp or one every user may traverse"
        )


def start(root: Path, *, durable: bool = True, port: int = 0, attempts: int = 3) -> LocalPostgres:
    """initdb into `root` (once; an existing cluster there is reused, so a demo restarts quickly), then
    start it on `port` (0: a free one). `durable=False` turns off fsync: fine for throwaway test data,
    wrong for a benchmark of commit rates."""
    bin_dir = binaries_dir()
    user = _server_user()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres(root=root, port=port, bin_dir=bin_dir, user=user)
    pg.socket_dir.mkdir(exist_ok=True)
    _hand_over(root, user)
    if not (pg.data / "PG_VERSION").exists():
        _run_server_tool(
            pg,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pg.data),
                "-U",
                SUPERUSER,
                "--auth=trust",  # the server listens on 127.0.0.1 and a private socket only
                "-E",
                "UTF8",
                "--no-locale",
            ]
            + (["--no-sync"] if not durable else []),
        )
    if pg.running():  # a server left behind by a crashed run: stop it, its port may be stale
        with contextlib.suppress(WorkbenchError):
            pg.stop()
        (pg.data / "postmaster.pid").unlink(missing_ok=True)
    sockets = str(pg.socket_dir) if len(str(pg.socket_dir)) <= _SOCKET_PATH_MAX else ""
    options = [f"-c listen_addresses=127.0.0.1 -c unix_socket_directories='{sockets}'"]
    if not durable:
        options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    last: WorkbenchError | None = None
    for _ in range(attempts):
        pg.port = port or free_port()
        try:
            _run_server_tool(
                pg,
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(pg.data),
                    "-l",
                    str(pg.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join([f"-p {pg.port}", *options]),
                ],
            )
            return pg
        except WorkbenchError as exc:  # most often: the free port was taken between look and bind
            last = exc
            if port:
                break
            time.sleep(0.2)
    raise last or WorkbenchError("PostgreSQL did not start")
