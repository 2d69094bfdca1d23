"""The sync facade (also inside a running loop), persistence across processes, resume, secrets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

import anyio
import attrs
import pytest

import aifactory
from aifactory import AsyncFactory, ConflictError
from aifactory.models import ExecutionStatus, RequestStatus
from aifactory.workers import ContentGranulator, ReportBuilder, WorkerContext, WorkerResult
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config, setup_people

ROOT = Path(__file__).resolve().parents[2]


def _flow(factory: aifactory.Factory) -> tuple[str, str, bytes]:
    """The whole flow through the sync facade; returns admin password, request id, report."""
    password = factory.bootstrap_admin(ADMIN)
    admin = factory.login(ADMIN, password, login_type="admin")
    acme = admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
    admin.users.create(email=ANA, password=ANA_PASSWORD, role="client", client_id=acme.id)
    ana = factory.login(ANA, ANA_PASSWORD)
    request = ana.requests.create(title="Market analysis for AI tools", urgency="high")
    admin.requests.assign_template(request.id, "quick_research")
    execution = admin.requests.execute(request.id)
    assert admin.executions.wait(execution.id).status is ExecutionStatus.COMPLETED
    [deliverable] = ana.deliverables.list(request.id)
    return password, request.id, ana.deliverables.download(deliverable.id)


def test_sync_facade_runs_the_flow() -> None:
    with aifactory.embedded(config=fast_config()) as factory:
        _, _, report = _flow(factory)
    assert report.startswith(b"# ")


def test_sync_facade_works_inside_a_running_event_loop() -> None:
    """A Jupyter cell runs inside an event loop; `asyncio.run` there would fail."""

    async def cell() -> bytes:
        with aifactory.embedded(config=fast_config()) as factory:
            return _flow(factory)[2]

    assert asyncio.run(cell()).startswith(b"# ")


def test_sync_events_iterate_and_views_complete() -> None:
    with aifactory.embedded(config=fast_config()) as factory:
        password = factory.bootstrap_admin(ADMIN)
        admin = factory.login(ADMIN, password, login_type="admin")
        assert "requests" in dir(admin)
        assert "create" in dir(admin.requests)
        acme = admin.clients.create(name="Acme", tier="basic", monthly_budget_usd=1)
        request = admin.requests.create(title="Course", client_id=acme.id)
        admin.requests.assign_template(request.id, "educational_course_basic")
        execution = admin.requests.execute(request.id)
        seqs = [event.seq for event in admin.executions.events(execution.id)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) >= 6


def test_a_reopened_home_shows_the_same_state(tmp_path: Path) -> None:
    """Run the flow in another process, then open its home here."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import aifactory
        from tests.client.test_sync_and_persistence import _flow
        from tests.helpers import fast_config
        from aifactory import RandomIds, SystemClock
        from pathlib import Path
        config = fast_config(
            Path({str(tmp_path)!r}), clock=SystemClock(), ids=RandomIds(), state_url=None
        )
        with aifactory.embedded(config=config) as factory:
            password, request_id, report = _flow(factory)
        print(password, request_id, report.hex())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    password, request_id, report = out[0], out[1], bytes.fromhex(out[2])

    config = fast_config(
        tmp_path, clock=aifactory.SystemClock(), ids=aifactory.RandomIds(), state_url=None
    )
    with aifactory.embedded(config=config) as factory:  # the home the other process wrote
        admin = factory.login(ADMIN, password, login_type="admin")
        [acme] = admin.clients.list()
        assert acme.name == "Acme"
        assert acme.used_this_month_usd > 0
        ana = factory.login(ANA, ANA_PASSWORD)
        request = ana.requests.get(request_id)
        assert request.status is RequestStatus.COMPLETED
        execution = admin.executions.get(request.execution_id)
        assert execution.status is ExecutionStatus.COMPLETED
        assert execution.stages_done == 2
        [deliverable] = ana.deliverables.list(request_id)
        assert ana.deliverables.download(deliverable.id) == report
        assert [n.kind for n in ana.notifications.list()] == ["request.completed"]
        with pytest.raises(ConflictError):
            factory.bootstrap_admin("second@factory.example")


def test_no_password_or_token_is_stored_in_the_clear(tmp_path: Path) -> None:
    with aifactory.embedded(config=fast_config(tmp_path)) as factory:
        password, _, _ = _flow(factory)
        session = factory.login(ANA, ANA_PASSWORD)
        with pytest.raises(aifactory.AuthenticationError):
            factory.login(ANA, "a-wrong-password-guess")
        token = session.token
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (password, ANA_PASSWORD, token, "a-wrong-password-guess"):
        assert secret.encode() not in stored


class _Counting(ContentGranulator):
    calls: ClassVar[int] = 0

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        type(self).calls += 1
        return await super().process(action, inputs, params, ctx)


class _Stuck(ReportBuilder):
    """A report builder that never finishes: its process gets stopped mid-stage."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_an_interrupted_execution_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    _Counting.calls = 0
    stuck = fast_config(tmp_path, workers=[_Counting(), _Stuck()])
    async with AsyncFactory.embedded(config=stuck) as factory:
        people = await setup_people(factory)
        request = await people.ana.requests.create(title="Market analysis for AI tools")
        await people.admin.requests.assign_template(request.id, "quick_research")
        execution = await people.admin.requests.execute(request.id)
        async with aclosing(people.admin.executions.events(execution.id)) as events:
            async for event in events:
                if event.kind == "stage.started" and event.stage_id == "report":
                    break
    # The factory closed with the report stage in flight. Opened without recovery (a
    # notebook that only reads), the execution waits for someone to resume it.
    healthy = fast_config(
        tmp_path, workers=[_Counting(), ReportBuilder()], ids=aifactory.RandomIds()
    )
    async with AsyncFactory.embedded(config=attrs.evolve(healthy, recover=False)) as factory:
        admin = await factory.login(ADMIN, people.admin_password, login_type="admin")
        interrupted = await admin.executions.get(execution.id)
        assert interrupted.status is ExecutionStatus.RUNNING
        with pytest.raises(ConflictError, match="resume it"):
            await admin.executions.wait(execution.id)
    # Opened as usual, the factory resumes it by itself.
    async with AsyncFactory.embedded(config=healthy) as factory:
        admin = await factory.login(ADMIN, people.admin_password, login_type="admin")
        final = await admin.executions.wait(execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        stages = {s.stage_id: s.attempt for s in await admin.executions.stages(execution.id)}
        assert stages == {"outline": 1, "report": 2}
        assert _Counting.calls == 1  # the committed stage did not run again
        [deliverable] = await admin.deliverables.list(request.id)
        assert (await admin.deliverables.download(deliverable.id)).startswith(b"# ")
        with pytest.raises(ConflictError):
            await admin.executions.resume(execution.id)


def test_a_factory_left_open_does_not_keep_the_interpreter_from_exiting(tmp_path: Path) -> None:
    # A notebook or script that forgets `close()`: the event loop's thread used to keep the
    # interpreter waiting at exit for good. It is closed then instead, its state intact.
    script = textwrap.dedent(
        """
        import sys
        import aifactory
        factory = aifactory.embedded(sys.argv[1])
        print(factory.bootstrap_admin("admin@factory.example"))
        """
    )
    opened = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert opened.returncode == 0, opened.stderr
    password = opened.stdout.strip()
    with aifactory.embedded(tmp_path / "home") as factory:
        admin = factory.login("admin@factory.example", password, login_type="admin")
        assert admin.user.email == "admin@factory.example"
