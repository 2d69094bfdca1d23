"""A deployment on loopback: the factory API and two worker services as separate processes.

    python examples/deployment.py [HOME]

It initialises a home, gives it a master key (`aifactory keys new-master`: every blob is
encrypted at rest with its client's data key, wrapped by that key), generates the
orchestrator's signing key (trusted by both worker services), starts `aifactory serve
worker ...` twice and `aifactory serve factory` with a deployment file naming them, then
runs one request through the client over HTTP and stops everything. Every secret is
generated here; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

import aifactory
from aifactory.auth import generate_password
from aifactory.auth.signing import generate_worker_key

ADMIN = "admin@example.com"
CLI = [sys.executable, "-m", "aifactory.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def main(home: Path) -> bytes:
    admin_password = generate_password()
    subprocess.run(
        [*CLI, "init", "--home", str(home), "--admin-email", ADMIN, "--admin-password", "-"],
        input=admin_password.encode(),
        check=True,
        capture_output=True,
    )
    # Every service below opens HOME/master.key (elsewhere: AIFACTORY_MASTER_KEY).
    subprocess.run(
        [*CLI, "keys", "new-master", "--home", str(home)], check=True, capture_output=True
    )
    key = generate_worker_key("orchestrator")
    trust = home / "trusted.keys"
    trust.write_text(key.to_text() + "\n")
    trust.chmod(0o600)
    ports = {"granulator": free_port(), "builder": free_port(), "factory": free_port()}
    deployment = home / "deployment.json"
    deployment.write_text(
        json.dumps(
            {
                "key": key.to_text(),
                "workers": [
                    {
                        "worker": "content_granulator",
                        "url": f"http://127.0.0.1:{ports['granulator']}",
                    },
                    {"worker": "report_builder", "url": f"http://127.0.0.1:{ports['builder']}"},
                ],
            }
        )
    )
    deployment.chmod(0o600)
    commands = {
        "granulator": ["serve", "worker", "content_granulator", "--trust", str(trust)],
        "builder": ["serve", "worker", "report_builder", "--trust", str(trust)],
        "factory": ["serve", "factory", "--deployment", str(deployment)],
    }
    with ExitStack() as stack:
        for name, command in commands.items():
            args = [*CLI, *command, "--home", str(home), "--port", str(ports[name])]
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(process.wait, 15)
            stack.callback(process.terminate)
            wait_healthy(f"http://127.0.0.1:{ports[name]}", process)
            print(f"{name:<10} http://127.0.0.1:{ports[name]}  (pid {process.pid})")

        with aifactory.connect(f"http://127.0.0.1:{ports['factory']}") as factory:
            admin = factory.login(ADMIN, admin_password, login_type="admin")
            acme = admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
            ana_password = generate_password()
            admin.users.create(email="ana@acme.example", password=ana_password, client_id=acme.id)
            ana = factory.login("ana@acme.example", ana_password)
            request = ana.requests.create(
                title="Market analysis for AI tools",
                description="Segments, vendors, pricing and adoption trends.",
            )
            admin.requests.assign_template(request.id, "quick_research")
            execution = admin.requests.execute(request.id)
            for event in admin.executions.events(execution.id):
                print(f"  {event.kind:<20} {event.stage_id or ''}")
            [deliverable] = ana.deliverables.list(request.id)
            return ana.deliverables.download(deliverable.id)


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="aif-deploy-"))
    )
    report = main(target)
    print(f"report: {len(report)} bytes, first line: {report.splitlines()[0].decode()}")
