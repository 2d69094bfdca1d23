"""The split deployment survives its services dying: KAM, orchestrator and a worker service run
as real processes on 127.0.0.1 (`aifactory serve kam|orchestrator`, and a worker service whose
stages the test can hold in flight), and are killed and started again mid-execution.

Each scenario ends with the request settled and a deliverable byte-identical to the one a
crash-free execution of an equal request delivers (the report depends only on the request,
its template and parameters: no ids or times go into it).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

import aifactory
from aifactory import ConflictError, Factory, Session, TransportError
from aifactory.models import Execution
from tests.remote.split_processes import ADMIN, SplitDeployment, eventually

TITLE = "Market analysis for AI tools"
DESCRIPTION = "Segments, vendors and pricing of AI tools; adoption trends."
NO_CACHE = {"cache": False}  # every stage really runs at the worker


@pytest.fixture
def split(tmp_path: Path) -> Iterator[SplitDeployment]:
    with SplitDeployment(tmp_path / "home") as deployment:
        yield deployment
        print("\n".join(deployment.logs()))  # pytest shows it when the test failed


def _people(factory: Factory, split: SplitDeployment) -> tuple[Session, Session]:
    admin = factory.login(ADMIN, split.admin_password, login_type="admin")
    acme = admin.clients.create(name="Acme", tier="enterprise", monthly_budget_usd=50)
    password = aifactory.auth.generate_password()
    admin.users.create(email="ana@acme.example", password=password, client_id=acme.id)
    return admin, factory.login("ana@acme.example", password)


def _request(admin: Session, ana: Session) -> str:
    request = ana.requests.create(title=TITLE, description=DESCRIPTION)
    admin.requests.assign_template(request.id, "quick_research", {"granularity": 3})
    return request.id


def _follow(url: str, token: str, execution_id: str) -> Execution:
    with aifactory.connect(url, token=token) as factory:
        return factory.session().executions.wait(execution_id, timeout_s=30)


def _report(ana: Session, request_id: str) -> bytes:
    [deliverable] = ana.deliverables.list(request_id)
    return ana.deliverables.download(deliverable.id)


def _settled_once(split: SplitDeployment, admin: Session, ana: Session, request_id: str) -> bytes:
    """Checks that the request was settled, once: one charge of what its execution cost, no
    budget still held, one notification, one deliverable. Returns the deliverable."""
    request = admin.requests.get(request_id)
    assert request.status.value == "completed"
    assert request.execution_id is not None
    execution = admin.executions.get(request.execution_id)
    [(charged,)] = split.query(
        "SELECT amount_usd FROM charges WHERE execution_id = ?", execution.id
    )
    assert Decimal(charged) == execution.cost.total_usd
    assert split.query("SELECT 1 FROM reservations WHERE execution_id = ?", execution.id) == []
    settled = admin.audit.list(action="request.settle", limit=100)
    assert [e.target for e in settled].count(f"request:{request_id}") == 1
    notes = [n.kind for n in ana.notifications.list() if n.data["request_id"] == request_id]
    assert notes == ["request.completed"]
    return _report(ana, request_id)


def _clean_report(admin: Session, ana: Session, split: SplitDeployment) -> bytes:
    """The deliverable of an equal request executed with every service up."""
    request_id = _request(admin, ana)
    execution = admin.requests.execute(request_id, resources=NO_CACHE)
    assert admin.executions.wait(execution.id, timeout_s=30).status.value == "completed"
    assert split.calls(execution.id) == [("outline", 1), ("report", 1)]
    return _settled_once(split, admin, ana, request_id)


def test_an_orchestrator_service_killed_mid_stage_resumes_from_its_checkpoint(
    split: SplitDeployment,
) -> None:
    with aifactory.connect(split.kam.url) as factory:
        admin, ana = _people(factory, split)
        split.hold("report")
        request_id = _request(admin, ana)
        execution = admin.requests.execute(request_id, resources=NO_CACHE)
        eventually(lambda: ("report", 1) in split.calls(execution.id), "report at the worker")
        with ThreadPoolExecutor(1) as pool:
            # Another client follows the execution through the KAM service all along.
            following = pool.submit(_follow, split.kam.url, admin.token, execution.id)
            split.orchestrator.kill()
            split.release()

            assert split.execution_status(execution.id) == "running"
            # Restarted, the service resumes what its killed process left, by itself.
            split.restart(split.orchestrator)
            final = following.result(timeout=30)
        assert final.status.value == "completed"
        assert admin.requests.get(request_id).status.value == "completed"

        # outline was committed before the kill: it never reached the worker again.
        assert split.calls(execution.id) == [("outline", 1), ("report", 1), ("report", 2)]
        stages = {
            s.stage_id: (s.status.value, s.attempt) for s in admin.executions.stages(execution.id)
        }
        assert stages == {"outline": ("succeeded", 1), "report": ("succeeded", 2)}
        events = [(e.kind, e.stage_id) for e in admin.executions.events(execution.id)]
        assert events.count(("stage.succeeded", "outline")) == 1
        assert events.count(("stage.succeeded", "report")) == 1
        assert [k for k, _ in events if k.startswith("execution.")] == [
            "execution.started",
            "execution.resumed",
            "execution.completed",
        ]
        crashed = _settled_once(split, admin, ana, request_id)
        assert crashed == _clean_report(admin, ana, split)


def _finish_while_kam_is_down(
    split: SplitDeployment, admin: Session, ana: Session
) -> tuple[str, str]:
    """Start an execution, kill the KAM service while its last stage is at the worker, and
    let it finish; returns the request and execution ids."""
    split.hold("report")
    request_id = _request(admin, ana)
    execution = admin.requests.execute(request_id, resources=NO_CACHE)
    eventually(lambda: ("report", 1) in split.calls(execution.id), "report at the worker")
    split.kam.kill()
    split.release()
    eventually(lambda: split.execution_status(execution.id) == "completed", "the final commit")
    return request_id, execution.id


def _request_status(split: SplitDeployment, request_id: str) -> str:
    [(status,)] = split.query("SELECT status FROM requests WHERE id = ?", request_id)
    return str(status)


def test_a_report_to_a_kam_service_back_within_its_retries_settles_the_request(
    split: SplitDeployment,
) -> None:
    with aifactory.connect(split.kam.url) as factory:
        admin, ana = _people(factory, split)
        request_id, execution_id = _finish_while_kam_is_down(split, admin, ana)
        assert _request_status(split, request_id) == "executing"  # the first report failed
        split.restart(split.kam)  # well within the ~7.5 s the report is retried for

        # The sessions live in the shared state: the client goes on as if nothing happened.
        eventually(
            lambda: admin.requests.get(request_id).status.value == "completed",
            "the retried report to settle the request",
        )
        assert "execution.finish_failed" not in split.event_kinds(execution_id)
        actions = {e.action for e in admin.audit.list(limit=500)}
        assert "execution.report" not in actions  # settled by the report, not by resume
        assert split.calls(execution_id) == [("outline", 1), ("report", 1)]
        assert _settled_once(split, admin, ana, request_id) == _clean_report(admin, ana, split)


def test_a_lost_report_is_settled_by_resume_on_the_kam_service(split: SplitDeployment) -> None:
    with aifactory.connect(split.kam.url) as factory:
        admin, ana = _people(factory, split)
        request_id, execution_id = _finish_while_kam_is_down(split, admin, ana)
        eventually(
            lambda: "execution.finish_failed" in split.event_kinds(execution_id),
            "the orchestrator service to give up its report",
        )
        split.restart(split.kam)

        assert admin.requests.get(request_id).status.value == "executing"
        assert ana.deliverables.list(request_id) == []
        resumed = admin.executions.resume(execution_id)
        assert resumed.status.value == "completed"
        assert admin.requests.get(request_id).status.value == "completed"
        actions = [e.action for e in admin.audit.list(limit=500)]
        assert actions.count("execution.report") == 1
        assert "execution.resume" not in actions  # settled, not run again
        with pytest.raises(ConflictError):  # settled and finished: nothing left to resume
            admin.executions.resume(execution_id)
        assert split.calls(execution_id) == [("outline", 1), ("report", 1)]
        assert _settled_once(split, admin, ana, request_id) == _clean_report(admin, ana, split)


def test_a_report_lost_with_its_orchestrator_is_sent_again_by_recovery(
    split: SplitDeployment,
) -> None:
    """The orchestrator service dies while retrying a report: once restarted, its recovery
    finds the finished execution nobody reported (still runnable, its owner gone) and
    reports it, with no one asking; resume then has nothing left to do."""
    with aifactory.connect(split.kam.url) as factory:
        admin, ana = _people(factory, split)
        request_id, execution_id = _finish_while_kam_is_down(split, admin, ana)
        split.orchestrator.kill()
        assert "execution.finish_failed" not in split.event_kinds(execution_id)
        split.restart(split.orchestrator)
        split.restart(split.kam)

        eventually(
            lambda: admin.requests.get(request_id).status.value == "completed",
            "the restarted orchestrator's recovery to report the execution",
            timeout_s=30,
        )
        actions = [e.action for e in admin.audit.list(limit=500)]
        assert "execution.report" not in actions  # no one had to ask
        with pytest.raises(ConflictError):  # settled and finished: nothing left to resume
            admin.executions.resume(execution_id)
        assert split.calls(execution_id) == [("outline", 1), ("report", 1)]
        assert _settled_once(split, admin, ana, request_id) == _clean_report(admin, ana, split)


def test_an_execute_the_orchestrator_service_never_got_starts_with_resume(
    split: SplitDeployment,
) -> None:
    with aifactory.connect(split.kam.url) as factory:
        admin, ana = _people(factory, split)
        split.orchestrator.stop()
        request_id = _request(admin, ana)
        with pytest.raises(TransportError, match=r"exec_\S+ .*recorded.*executions\.resume") as err:
            admin.requests.execute(request_id, resources=NO_CACHE)
        execution_id = err.value.details["execution_id"]
        assert execution_id in err.value.message
        request = admin.requests.get(request_id)
        assert (request.status.value, request.execution_id) == ("executing", execution_id)
        assert admin.executions.get(execution_id).status.value == "pending"
        assert split.calls(execution_id) == []

        split.restart(split.orchestrator)
        # The restarted service's recovery may take the (runnable) execution up on its own,
        # and even finish and settle it before this asks: then there is nothing to resume.
        refusal: dict[str, object] | None = None
        try:
            admin.executions.resume(execution_id)
        except ConflictError as exc:
            refusal = exc.details
        assert refusal in (None, {"status": "completed"})  # refused only as done already
        final = admin.executions.wait(execution_id, timeout_s=30)
        assert final.status.value == "completed"
        assert admin.requests.get(request_id).status.value == "completed"
        assert split.calls(execution_id) == [("outline", 1), ("report", 1)]
        assert _settled_once(split, admin, ana, request_id) == _clean_report(admin, ana, split)
