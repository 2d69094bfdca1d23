"""A stage cut short at a worker service still costs what its model calls were billed.

The orchestrator gives the attempt up (the run is cancelled, or the attempt times out), so
the worker's reply, which would have said what it spent, never comes; the worker service
tells it in answer to the acknowledge that gives the attempt up. The worker service is a
real uvicorn server on 127.0.0.1 with its model client pointed at a local OpenAI-compatible
server that counts what it billed."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from aifactory import AsyncFactory
from aifactory._embedded import EmbeddedFactory
from aifactory.auth.signing import generate_worker_key
from aifactory.llm import LLMConfig, PriceTable, TokenUsage
from aifactory.models import ExecutionStatus
from aifactory.server.deploy import worker_service
from aifactory.transports import HttpWorkerTransport
from aifactory.transports.factory import InProcessFactoryTransport
from aifactory.workers import ReportBuilder
from tests.helpers import fast_config, setup_people
from tests.openai_server import OpenAIServer, held
from tests.schema_model import answer
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


@pytest.fixture
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer(default=answer) as server:
        yield server


def _usd(billed: list[tuple[int, int]]) -> Decimal:
    prices = PriceTable()
    return sum((prices.cost("gpt-4o-mini", TokenUsage(p, c)) for p, c in billed), Decimal(0))


async def test_a_run_cancelled_while_a_worker_service_runs_its_stage_is_charged_its_calls(
    model: OpenAIServer, tmp_path: Path
) -> None:
    asked, release = threading.Event(), threading.Event()
    hang = held(asked, release)  # the granulator's re-ask: held until the run is cancelled
    llm = LLMConfig(model="gpt-4o-mini", api_key=secrets.token_hex(16), base_url=model.base_url)
    key = generate_worker_key("orchestrator")
    service = worker_service(fast_config(tmp_path, llm=llm), ["content_granulator"], [key])
    # The outline stage's first reply misses its schema (billed); its re-ask hangs.
    model.add("{}", hang)
    try:
        with UvicornThread(service) as granulator:
            endpoint = HttpWorkerTransport(granulator.url, "content_granulator", key)
            config = fast_config(tmp_path, workers=[ReportBuilder()])
            async with EmbeddedFactory(config, endpoints=[endpoint]) as runtime:
                people = await setup_people(AsyncFactory(InProcessFactoryTransport(runtime)))
                request = await people.ana.requests.create(title="A course on welding safety")
                await people.admin.requests.assign_template(request.id, "quick_research")
                execution = await people.admin.requests.execute(request.id)
                assert await anyio.to_thread.run_sync(asked.wait, 30)
                final = await people.admin.executions.cancel(execution.id)
                stages = {s.stage_id: s for s in await people.admin.executions.stages(final.id)}
                used = (await people.admin.clients.get(people.client_id)).used_this_month_usd
    finally:
        release.set()
    assert final.status is ExecutionStatus.CANCELLED
    [billed] = model.billed  # the first reply; the hung re-ask was never billed
    outline = stages["outline"]
    assert (outline.usage.prompt_tokens, outline.usage.completion_tokens) == billed
    assert outline.usage.model_calls == 1
    assert outline.cost.llm_usd == _usd([billed]) > 0
    assert final.cost.llm_usd == outline.cost.llm_usd
    assert used == final.cost.total_usd
