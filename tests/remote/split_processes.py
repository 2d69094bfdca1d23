"""The split deployment as real processes on 127.0.0.1, for tests that kill and restart them.

`SplitDeployment` prepares a home (its admin's password generated), generates the KAM and
orchestrator services' signing keys, writes their deployment files and the worker service's
trusted keys, and starts `aifactory serve kam`, `aifactory serve orchestrator` and a worker
service whose stages can be held (`tests.remote.held_worker`). Each can be killed
(SIGKILL), stopped and started again on the same port. Leaving the `with` block stops every
process it started, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

import aifactory
from aifactory import FactoryConfig
from aifactory.auth import generate_password
from aifactory.auth.signing import generate_worker_key
from tests.remote.held_worker import CALLS, HOLD

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin@example.com"
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 20) -> T:
    """`probe()`'s first answer that is not None (or False), asked every 50 ms."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Service:
    """One server process, started and stopped by the test; its output goes to a log file."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.command, self.port, self.log = name, command, port, log
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process; `wait_healthy` waits until it answers."""
        assert self.process is None, f"{self.name} is running"
        # Only what the services need from the environment: no storage or model settings
        # of whoever runs the tests.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFACTORY_", "AWS_"))}
        env |= self.env  # what the test gives it (storage, credentials)
        self._log = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_healthy(self, timeout_s: float = 30) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL: no lifespan, no cleanup, as a crash."""
        self._end(lambda p: p.send_signal(signal.SIGKILL))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        self._end(lambda p: p.terminate())

    def _end(self, signal_it: Callable[[subprocess.Popen[bytes]], None]) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                signal_it(process)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class SplitDeployment:
    """KAM, orchestrator and a held worker service on one home, as separate processes.

    `state` (a PostgreSQL URL) replaces the home's SQLite file; `orchestrators` replicas share
    it (the KAM service launches on the first; the others take over what is left), with
    leases of `lease_s`; the worker service spends `worker_delay_s` on each call. `storage`
    (a URL and an S3 endpoint) puts every service's blobs there, with `env` (credentials)
    in their environment; `worker_services` runs that many equal worker services.
    """

    def __init__(
        self,
        home: Path,
        *,
        state: str | None = None,
        orchestrators: int = 1,
        lease_s: float | None = None,
        worker_delay_s: float = 0.0,
        storage: tuple[str, str] | None = None,
        env: dict[str, str] | None = None,
        worker_services: int = 1,
    ) -> None:
        self.home = home
        self.state = state
        self.storage = storage
        self.admin_password = generate_password()
        cli = [sys.executable, "-m", "aifactory.cli"]
        kam_key, orch_key = generate_worker_key("kam"), generate_worker_key("orchestrator")
        workers = [f"worker{i}" for i in range(worker_services)]
        names = ["kam", *workers, *(f"orchestrator{i}" for i in range(orchestrators))]
        ports = {name: _free_port() for name in names}
        ports["orchestrator"] = ports["orchestrator0"]
        ports["worker"] = ports["worker0"]
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        files = {
            "kam.json": {
                "key": kam_key.to_text(),
                "trust": [orch_key.to_text()],
                "orchestrator_url": url["orchestrator"],
            },
            "orchestrator.json": {
                "key": orch_key.to_text(),
                "trust": [kam_key.to_text()],
                "kam_url": url["kam"],
                "workers": [
                    {"worker": worker, "url": url[service]}
                    for service in workers
                    for worker in ("content_granulator", "report_builder")
                ],
            },
        }
        home.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (home / name).write_text(json.dumps(content))
            (home / name).chmod(0o600)
        (home / "worker.keys").write_text(orch_key.to_text() + "\n")
        (home / "worker.keys").chmod(0o600)
        common = ["--home", str(home), "--log-level", "warning"]
        if state is not None:
            common += ["--state", state]
        if storage is not None:
            common += ["--storage", storage[0], "--storage-endpoint", storage[1]]
        service_env = dict(env or {})
        if storage is not None:  # the worker services read it from the environment
            service_env |= {
                "AIFACTORY_STORAGE": storage[0],
                "AIFACTORY_STORAGE_ENDPOINT": storage[1],
            }
        replica = ["--lease-seconds", str(lease_s)] if lease_s is not None else []
        self.kam = Service(
            "kam",
            [
                *cli,
                "serve",
                "kam",
                "--deployment",
                str(home / "kam.json"),
                *common,
                "--port",
                str(ports["kam"]),
            ],
            ports["kam"],
            home / "kam.log",
            service_env,
        )
        self.orchestrators = [
            Service(
                f"orchestrator{i}",
                [
                    *cli,
                    "serve",
                    "orchestrator",
                    "--deployment",
                    str(home / "orchestrator.json"),
                    *common,
                    *replica,
                    "--port",
                    str(ports[f"orchestrator{i}"]),
                ],
                ports[f"orchestrator{i}"],
                home / f"orchestrator{i}.log",
                service_env,
            )
            for i in range(orchestrators)
        ]
        self.orchestrator = self.orchestrators[0]
        self.workers = [
            Service(
                name,
                [
                    sys.executable,
                    "-m",
                    "tests.remote.held_worker",
                    str(home),
                    str(ports[name]),
                    str(home / "worker.keys"),
                    str(worker_delay_s),
                ],
                ports[name],
                home / f"{name}.log",
                service_env,
            )
            for name in workers
        ]
        self.worker = self.workers[0]
        self.services = (self.kam, *self.orchestrators, *self.workers)

    def __enter__(self) -> Self:
        try:
            config = FactoryConfig(home=self.home, state_url=self.state, recover=False)
            with aifactory.embedded(config=config) as factory:
                factory.bootstrap_admin(ADMIN, self.admin_password)
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for service in self.services:
            service.stop()
        (self.home / HOLD).unlink(missing_ok=True)

    def restart(self, service: Service) -> None:
        service.start()
        service.wait_healthy()

    # -- holding a stage at the worker ---------------------------------------------------------

    def hold(self, stage_id: str) -> None:
        """Calls for `stage_id` wait at the worker until `release`."""
        (self.home / HOLD).write_text(stage_id)

    def release(self) -> None:
        (self.home / HOLD).unlink(missing_ok=True)

    def calls(self, execution_id: str) -> list[tuple[str, int]]:
        """`(stage, attempt)` of every call the worker service got for the execution."""
        path = self.home / CALLS
        lines = path.read_text().splitlines() if path.exists() else []
        return [
            (stage, int(attempt))
            for execution, stage, attempt in (line.split() for line in lines)
            if execution == execution_id
        ]

    # -- the shared state, read while a service is down ----------------------------------------

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (`?` placeholders) on the shared state database."""
        if self.state is not None:
            import psycopg

            with psycopg.connect(self.state, autocommit=True) as db:
                return list(db.execute(sql.replace("?", "%s"), args).fetchall())
        uri = f"file:{self.home / 'state.sqlite3'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            return db.execute(sql, args).fetchall()

    def execution_status(self, execution_id: str) -> str:
        [(status,)] = self.query("SELECT status FROM executions WHERE id = ?", execution_id)
        return str(status)

    def event_kinds(self, execution_id: str) -> list[str]:
        rows = self.query(
            "SELECT kind FROM events WHERE execution_id = ? ORDER BY seq", execution_id
        )
        return [str(kind) for (kind,) in rows]

    def logs(self) -> Iterator[str]:
        for service in self.services:
            yield f"--- {service.name} ---\n{service.output()}"
