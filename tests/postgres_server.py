"""A throwaway PostgreSQL server for the tests and the benchmarks.

`PostgresServer` runs `initdb` in a temporary folder and starts `postgres` on 127.0.0.1 at a
free port (and on a Unix socket in that folder), with trust authentication for local
connections only. `stop()` shuts it down at once and removes the folder; it also runs at
interpreter exit, so no server outlives the process that started it (short of SIGKILL).

PostgreSQL refuses to run as root: where the process is root, the server's commands run as the
`postgres` OS user (`runuser -u postgres`), which Debian's `postgresql` package creates.

Each test gets its own schema in one shared test database (`fresh_schema()`), which takes a
few milliseconds, where a database of its own would take far longer. A URL with a schema sets
`search_path` to that schema through libpq's `options`, so a connection made from it creates
and finds its tables there.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import parse_qs, quote, urlsplit

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresServer", "find_bindir"]

TEST_DATABASE = "aifactory_test"
"""The database, created once per server, that holds the schemas of `fresh_schema()`."""

_OS_USER = "postgres"
_SUPERUSER = "postgres"
_HINT = "install PostgreSQL's server binaries (Debian: apt-get install postgresql), as .ci/run does"
# Settings for tests: durability off (a crashed test server is thrown away anyway).
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_CAPACITY_SETTINGS = {"max_connections": "200", "shared_buffers": "128MB"}
_FRESH_SCHEMA = re.compile(r"test_[0-9a-f]{16}")


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_bindir() -> Path:
    """The folder of the newest PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`)."""
    candidates = [
        path
        for path in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(os.path.join(path, "initdb"), os.X_OK)
    ]
    if candidates:
        return Path(max(candidates, key=_version_key))
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and os.access(os.path.join(found, "initdb"), os.X_OK):
            return Path(found)
    raise RuntimeError(
        "no PostgreSQL server binaries found (no /usr/lib/postgresql/*/bin/initdb, "
        f"nor initdb in `pg_config --bindir`): {_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    """Whether a process runs (exists and is no zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _schema_of(url: str) -> str:
    """The schema named in a URL's `options=-csearch_path=...`."""
    for option in parse_qs(urlsplit(url).query).get("options", []):
        match = re.fullmatch(r"-c\s*search_path=(\S+)", option.strip())
        if match:
            return match.group(1)
    raise ValueError(f"the URL names no schema (no options=-csearch_path=...): {url}")


class PostgresServer:
    """A PostgreSQL server in a temporary folder, on 127.0.0.1 and a Unix socket.

    `durable=True` keeps PostgreSQL's default durability (fsync, synchronous commit, full page
    writes), for benchmarks whose figures should mean what they would in production; by
    default these are off, which makes commits much faster and is fine for a throwaway server.
    """

    def __init__(self, *, durable: bool = False, bindir: Path | None = None) -> None:
        self.durable = durable
        self._bindir = bindir
        self._base: Path | None = None
        self._port: int | None = None
        self._running = False
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    # -- the server's life ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None or not self._running:
            raise RuntimeError("the PostgreSQL server is not running")
        return self._port

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's Unix socket (a libpq `host`)."""
        if self._base is None or not self._running:
            raise RuntimeError("the PostgreSQL server is not running")
        return self._base / "run"

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> Self:
        if self._running:
            return self
        bindir = self._bindir = self._bindir or find_bindir()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                owner = pwd.getpwnam(_OS_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no {_OS_USER!r} OS user to run "
                    f"PostgreSQL as: {_HINT}"
                ) from None
        base = Path(tempfile.mkdtemp(prefix="aifactory-pg-"))
        self._base = base
        atexit.register(self.stop)
        try:
            base.chmod(0o711)  # traversable by the `postgres` user, listable by no one else
            data, run = base / "data", base / "run"
            for folder in (data, run):
                folder.mkdir(mode=0o700)
                if as_root:
                    os.chown(folder, owner.pw_uid, owner.pw_gid)
            self._run(
                bindir / "initdb",
                "--pgdata",
                str(data),
                "--username",
                _SUPERUSER,
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--auth-local",
                "trust",
                "--auth-host",
                "trust",
                "--no-sync",
            )
            # Trust for the Unix socket and 127.0.0.1 only (initdb's default also has ::1 and
            # replication lines); the server listens nowhere else anyway.
            (data / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            )
            self._start_postgres(bindir, data, run)
        except BaseException:
            self.stop()
            raise
        self._running = True
        return self

    def _start_postgres(self, bindir: Path, data: Path, run: Path) -> None:
        settings = dict(_CAPACITY_SETTINGS)
        if not self.durable:
            settings.update(_FAST_SETTINGS)
        settings["listen_addresses"] = "127.0.0.1"
        settings["unix_socket_directories"] = str(run)
        log = run / "postgres.log"
        # The port is free when probed; another process may take it before postgres binds it,
        # so a failed start is retried on another port.
        for attempt in range(3):
            self._port = _free_port()
            settings["port"] = str(self._port)
            options = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
            try:
                self._run(
                    bindir / "pg_ctl",
                    "start",
                    "--pgdata",
                    str(data),
                    "--log",
                    str(log),
                    "--wait",
                    "--timeout",
                    "60",
                    "--options",
                    options,
                )
                return
            except RuntimeError as exc:
                self._stop_postgres(bindir, data)
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                if attempt == 2 or "could not bind" not in tail:
                    raise RuntimeError(f"{exc}\n--- postgres.log ---\n{tail}") from None

    def stop(self) -> None:
        """Stops the server at once (`-m immediate`) and removes its folder; safe to repeat."""
        with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        base, self._base = self._base, None
        self._running = False
        atexit.unregister(self.stop)
        if base is None:
            return
        data = base / "data"
        if (data / "postmaster.pid").exists():
            self._stop_postgres(self._bindir or find_bindir(), data)
        shutil.rmtree(base, ignore_errors=True)

    def _stop_postgres(self, bindir: Path, data: Path) -> None:
        pidfile = data / "postmaster.pid"
        try:
            pid: int | None = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        with contextlib.suppress(RuntimeError):
            self._run(bindir / "pg_ctl", "stop", "--pgdata", str(data), "-m", "immediate", "-w")
        if pid is None:
            return
        if pidfile.exists():
            # pg_ctl failed: end the postmaster it started, by its id, as pg_ctl would.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        # The postmaster removes its pid file just before it exits: wait (briefly) until it has
        # exited, so that nothing of the server runs once `stop()` returns. Its parent is init
        # (pg_ctl detached it), which may take a while to reap it: a zombie counts as gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.01)

    def _run(self, program: Path, *args: str) -> None:
        command = [str(program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", _OS_USER, "--", *command]
        # No PG* variable of the caller's may redirect the server's tools elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        done = subprocess.run(
            command,
            cwd="/",  # somewhere the `postgres` user may be
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(command)} exited {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()}"
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- URLs and schemas -----------------------------------------------------------------

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        """A `postgresql://` URL of the server, as the superuser over TCP on 127.0.0.1.

        With `schema`, connections made from it use that schema by default (`search_path`).
        """
        url = f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"
        if schema is not None:
            url += "?options=" + quote(f"-csearch_path={schema}", safe="")
        return url

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the test database, created with it on first use."""
        import psycopg
        from psycopg import sql

        if self._admin is None:
            with psycopg.connect(self.url(), autocommit=True) as postgres:
                exists = postgres.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)
                ).fetchone()
                if exists is None:
                    postgres.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE))
                    )
            admin = psycopg.connect(self.url(TEST_DATABASE), autocommit=True)
            # A schema whose tables a leaked connection still locks fails to drop, not hangs.
            admin.execute("SET lock_timeout = '10s'")
            self._admin = admin
        return self._admin

    def fresh_schema(self) -> str:
        """Creates an empty schema with a new name in the test database; returns its URL."""
        from psycopg import sql

        schema = f"test_{secrets.token_hex(8)}"
        with self._lock:
            self._admin_connection().execute(
                sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema))
            )
        return self.url(TEST_DATABASE, schema)

    def drop_schema(self, url: str) -> None:
        """Drops the schema of a URL from `fresh_schema()`, with everything in it."""
        import psycopg
        from psycopg import sql

        schema = _schema_of(url)
        if not _FRESH_SCHEMA.fullmatch(schema):
            raise ValueError(f"not a schema name of fresh_schema(): {schema!r}")
        with self._lock:
            try:
                self._admin_connection().execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            except psycopg.errors.LockNotAvailable:
                raise RuntimeError(
                    f"schema {schema} could not be dropped: a connection still holds locks "
                    "on it (close every connection and pool before the test ends)"
                ) from None
