"""Services built from a configuration release what they opened when they stop."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from aifactory.auth.signing import generate_worker_key
from aifactory.llm import LLMConfig, OpenAIProvider
from aifactory.llm.metering import MeteredLLM
from aifactory.server.deploy import worker_service
from aifactory.workers.base import ModelWorker
from tests.helpers import fast_config

pytestmark = pytest.mark.anyio


async def test_a_worker_service_closes_its_model_client_when_it_stops(tmp_path: Path) -> None:
    # Never called: the service is only started and stopped (the URL is loopback anyway).
    llm = LLMConfig(api_key=secrets.token_hex(16), base_url="http://127.0.0.1:9/v1")
    config = fast_config(tmp_path, llm=llm)
    app = worker_service(config, ["content_granulator"], [generate_worker_key("orchestrator")])
    [host] = app.state.hosts
    worker = host.worker
    assert isinstance(worker, ModelWorker)
    metered = worker.llm
    assert isinstance(metered, MeteredLLM)  # every model call is counted
    provider = metered.llm
    assert isinstance(provider, OpenAIProvider)
    async with app.router.lifespan_context(app):
        assert not provider._client.is_closed()
    assert provider._client.is_closed()
