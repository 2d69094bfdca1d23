"""`/metrics` scraped from a real server on 127.0.0.1 and read with Prometheus' own text
parser: the counters and histograms of a mixed workload are its known truth, labels carry
no ids, and the endpoint answers only to its bearer token."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from aifactory import AsyncFactory, ManualClock
from aifactory.auth.signing import SignatureVerifier, generate_worker_key
from aifactory.server import serving
from aifactory.server.deploy import worker_service
from aifactory.server.worker_app import worker_app
from tests.helpers import ADMIN, fast_config
from tests.kam.test_metrics import _runtime, _workload, _world
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio


def _samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert found, (name, labels)
    return sum(found)


async def test_metrics_scraped_from_a_server_are_the_workloads_truth() -> None:
    token = secrets.token_urlsafe(24)
    runtime = _runtime(metrics_token=token)
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    with UvicornThread(serving(runtime)) as server:
        async with AsyncFactory.connect(server.url) as factory:
            world = await _world(runtime, factory, password)
            await _workload(world)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            reply = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples = list(_samples(reply.text))
    attempts = runtime.config.retry.maximum_attempts

    def executions(template: str, outcome: str) -> float:
        return _value(samples, "aifactory_executions_total", template=template, outcome=outcome)

    assert executions("alpha", "completed") == 2
    assert executions("alpha", "cancelled") == 1
    assert executions("beta", "completed") == 1
    assert executions("beta", "failed") == 1

    def stages(worker: str, outcome: str) -> float:
        return _value(samples, "aifactory_stages_total", worker=worker, outcome=outcome)

    assert (stages("fetcher", "succeeded"), stages("flaky", "succeeded")) == (3, 2)
    assert (stages("writer", "succeeded"), stages("writer", "failed")) == (3, 1)
    assert _value(samples, "aifactory_stage_retries_total", worker="flaky") == 1
    assert _value(samples, "aifactory_stage_retries_total", worker="writer") == attempts - 1
    assert _value(samples, "aifactory_model_calls_total") == 8
    assert _value(samples, "aifactory_tokens_total", kind="prompt") == 800
    assert _value(samples, "aifactory_tokens_total", kind="completion") == 400
    assert _value(samples, "aifactory_stored_bytes_total", worker="writer") >= 300
    assert _value(samples, "aifactory_cost_usd_total") >= 0.08
    assert _value(samples, "aifactory_stage_cpu_seconds_total") > 0
    # Histograms: on the manual clock, a fetch takes 0.5 s of queue and 2 s of work.
    fetch = {"worker": "fetcher"}
    assert _value(samples, "aifactory_stage_duration_seconds_count", **fetch) == 3
    assert _value(samples, "aifactory_stage_duration_seconds_sum", **fetch) == 7.5
    assert _value(samples, "aifactory_stage_queue_seconds_sum", **fetch) == 1.5
    assert _value(samples, "aifactory_stage_duration_seconds_bucket", le="2.5", **fetch) == 3
    assert _value(samples, "aifactory_stage_duration_seconds_bucket", le="1.0", **fetch) == 0
    assert _value(samples, "aifactory_execution_duration_seconds_count") == 5
    # HTTP requests by route template; no label anywhere holds an id.
    execute = "/api/kam/requests/{request_id}/execute"
    assert _value(samples, "aifactory_http_requests_total", route=execute, status="200") == 5
    labels = {value for s in samples for value in s.labels.values()}
    assert not any(v.startswith(("req_", "exec_", "cli_", "usr_")) for v in labels), labels


def test_metrics_are_not_served_without_a_token() -> None:
    runtime = _runtime()
    with UvicornThread(serving(runtime)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/metrics").status_code == 404
        assert http.get("/health").status_code == 200


def test_a_worker_service_serves_its_request_metrics() -> None:
    token = secrets.token_urlsafe(24)
    app = worker_app([], SignatureVerifier({}, ManualClock()), metrics_token=token)
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/metrics").status_code == 401
        reply = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    samples = list(_samples(reply.text))
    assert _value(samples, "aifactory_http_requests_total", service="worker", route="/health") == 1


def test_a_served_worker_service_has_metrics_with_the_configured_token(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    config = fast_config(tmp_path, metrics_token=token)
    app = worker_service(config, ["content_granulator"], [generate_worker_key("orchestrator")])
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        reply = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    samples = list(_samples(reply.text))
    assert _value(samples, "aifactory_http_requests_total", service="worker", route="/health") == 1
    assert _value(samples, "aifactory_http_requests_total", route="/metrics", status="401") == 1


def test_a_served_worker_service_without_a_token_has_no_metrics(tmp_path: Path) -> None:
    app = worker_service(
        fast_config(tmp_path), ["content_granulator"], [generate_worker_key("orchestrator")]
    )
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/metrics").status_code == 404
