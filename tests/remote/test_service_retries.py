"""Calls between the split services ride out the other service restarting: the orchestrator
service's report to the KAM service, and the KAM service's request to launch an execution.
They give up (for `resume` to finish the job later) only after their retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aifactory import ConflictError, NotFoundError, TransportError
from aifactory.auth.signing import generate_worker_key
from aifactory.models import Execution, ExecutionStatus, StageSpec, Template, Tier
from aifactory.orchestrator import ExecutionReport
from aifactory.server.services import SERVICE_RETRY, HttpSink, RemoteControl, ServiceClient
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 28, tzinfo=UTC)
TEMPLATE = Template("t", "T", "", "x", (Tier.BASIC,), (StageSpec("s", "w"),))


def _report() -> ExecutionReport:
    execution = Execution(
        "exec_1", "req_1", "cli_1", TEMPLATE, {}, ExecutionStatus.COMPLETED, NOW, NOW
    )
    return ExecutionReport(execution, ())


def _kam(received: list[dict[str, Any]], status: int = 200) -> Starlette:
    async def complete(request: Request) -> JSONResponse:
        received.append(await request.json())
        if status == 200:
            return JSONResponse({"settled": True})
        return JSONResponse(
            {"error": {"code": "not_found", "message": "no execution 'exec_1'"}}, status
        )

    return Starlette(
        routes=[Route("/api/worker-sessions/{id}/complete", complete, methods=["POST"])]
    )


async def test_a_report_waits_for_a_kam_service_that_is_restarting() -> None:
    received: list[dict[str, Any]] = []
    server = UvicornThread(_kam(received))  # its port is reserved, nobody listens yet
    sink = HttpSink(ServiceClient(server.url, generate_worker_key("orchestrator")))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink.execution_finished, _report())
            await anyio.sleep(0.3)  # the first attempt is refused meanwhile
            assert received == []
            await anyio.to_thread.run_sync(server.start)
        assert [r["execution_id"] for r in received] == ["exec_1"]
        assert received[0]["status"] == "completed"
    finally:
        server.stop()
        await sink.kam.aclose()


async def test_a_report_gives_up_after_its_retries_and_never_retries_a_refusal() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    server = UvicornThread(_kam([]))  # never started: every attempt is refused
    sink = HttpSink(ServiceClient(server.url, generate_worker_key("orchestrator")), sleep=sleep)
    try:
        with pytest.raises(TransportError):
            await sink.execution_finished(_report())
    finally:
        await sink.kam.aclose()
        server._sock.close()
    assert len(waits) == SERVICE_RETRY.maximum_attempts - 1
    assert waits == sorted(waits)  # backing off
    for attempt, wait in enumerate(waits, start=1):
        low, high = SERVICE_RETRY.delay_bounds(attempt)
        assert low <= wait <= high

    received: list[dict[str, Any]] = []
    with UvicornThread(_kam(received, status=404)) as refusing:
        sink = HttpSink(ServiceClient(refusing.url, generate_worker_key("orchestrator")))
        try:
            with pytest.raises(NotFoundError):
                await sink.execution_finished(_report())
        finally:
            await sink.kam.aclose()
    assert len(received) == 1  # an answer that says no is not asked again


def _orchestrator(launched: list[str], answer: int = 200) -> Starlette:
    async def launch(request: Request) -> JSONResponse:
        launched.append(request.path_params["id"])
        if answer == 200:
            return JSONResponse({})
        error = {"code": "conflict", "message": f"execution {launched[-1]} is already running"}
        return JSONResponse({"error": error}, answer)

    path = "/api/pipelines/executions/{id}/launch"
    return Starlette(routes=[Route(path, launch, methods=["POST"])])


async def test_a_launch_waits_for_an_orchestrator_service_that_is_restarting() -> None:
    launched: list[str] = []
    server = UvicornThread(_orchestrator(launched))
    control = RemoteControl(ServiceClient(server.url, generate_worker_key("kam")))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(control.launch, "exec_1")
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(server.start)
        assert launched == ["exec_1"]
    finally:
        server.stop()
        await control.orchestrator.aclose()


async def test_a_retried_launch_that_finds_it_running_is_done() -> None:
    # The first try was refused at the door here; had it got through with its answer lost,
    # the service would say "already running" to the next, which means it runs.
    launched: list[str] = []
    server = UvicornThread(_orchestrator(launched, answer=409))
    control = RemoteControl(ServiceClient(server.url, generate_worker_key("kam")))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(control.launch, "exec_1")
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(server.start)
        assert launched == ["exec_1"]
        with pytest.raises(ConflictError):  # asked once and refused: that is the answer
            await control.launch("exec_2")
    finally:
        server.stop()
        await control.orchestrator.aclose()


async def test_a_launch_that_never_gets_through_says_how_to_start_it_later() -> None:
    async def sleep(seconds: float) -> None:
        return None

    server = UvicornThread(_orchestrator([]))  # never started
    control = RemoteControl(ServiceClient(server.url, generate_worker_key("kam")), sleep=sleep)
    try:
        with pytest.raises(TransportError, match=r"exec_1 .*recorded.*executions\.resume") as err:
            await control.launch("exec_1")
    finally:
        await control.orchestrator.aclose()
        server._sock.close()
    assert err.value.details == {"execution_id": "exec_1"}
    # Clients of the KAM service see this message: it does not say where services listen.
    assert "127.0.0.1" not in err.value.message
    assert str(server.port) not in err.value.message
