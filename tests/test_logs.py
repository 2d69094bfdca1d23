"""Structured logs: each line names its execution, stage and request; `aifactory serve
--log-format json` writes JSON lines, and no secret reaches them."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from aifactory._logs import JsonFormatter, log_context, log_ids
from aifactory.workers import WorkerContext, WorkerResult
from tests.orchestrator.harness import Harness, Step, stage, template
from tests.servers import cli_server

pytestmark = pytest.mark.anyio

ADMIN = "admin@example.com"

_talk = logging.getLogger("tests.logs.worker")


class Talker(Step):
    """A step that logs while it works."""

    async def process(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: WorkerContext
    ) -> WorkerResult:
        _talk.warning("working on %s", self.name)
        return await super().process(action, inputs, params, ctx)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured() -> Iterator[_Lines]:
    handler = _Lines()
    _talk.addHandler(handler)
    try:
        yield handler
    finally:
        _talk.removeHandler(handler)


async def test_lines_logged_in_a_stage_name_its_execution_and_stage(captured: _Lines) -> None:
    h = Harness([Talker("first"), Talker("second")])
    tpl = template(stage("a", "first"), stage("b", "second", "a"))
    done = await h.run(tpl)
    assert [(line["execution_id"], line["stage_id"]) for line in captured.lines] == [
        (done.id, "a"),
        (done.id, "b"),
    ]
    assert [line["message"] for line in captured.lines] == ["working on first", "working on second"]
    assert all(line["request_id"] is None for line in captured.lines)
    # Nothing leaks out of the stages that set them.
    assert log_ids() == {"execution_id": None, "stage_id": None, "request_id": None}


def test_a_json_line_carries_the_context_and_the_traceback() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
        record.exc_info = sys.exc_info()
    with log_context(request_id="req_1", execution_id="exec_1"):
        line = json.loads(formatter.format(record))
    assert (line["message"], line["level"]) == ("failed here", "ERROR")
    assert (line["request_id"], line["execution_id"], line["stage_id"]) == ("req_1", "exec_1", None)
    assert "ValueError: boom" in line["exc"]
    assert line["time"].endswith("Z")


def _clean_env(**extra: str) -> dict[str, str]:
    own = ("AIFACTORY_HOME", "AIFACTORY_STORAGE", "AIFACTORY_STORAGE_ENDPOINT")
    return {**{k: v for k, v in os.environ.items() if k not in own}, **extra}


def test_serve_writes_json_lines_with_request_ids_and_no_secret(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    init = subprocess.run(
        [sys.executable, "-m", "aifactory.cli", "init", "--home", home, "--admin-email", ADMIN],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    canary = f"canary-{secrets.token_hex(12)}"
    log = tmp_path / "serve.log"
    env = _clean_env(AIFACTORY_LOG_FORMAT="json")
    with (
        log.open("w") as said,
        cli_server(
            "serve", "factory", "--home", home, "--log-level", "info", env=env, stderr=said
        ) as url,
    ):
        login = {"username": ADMIN, "password": canary}
        refused = httpx.post(f"{url}/api/auth/login", json=login, timeout=10)
        assert refused.status_code == 401
        request_id = refused.headers["x-request-id"]
        unknown = httpx.get(f"{url}/api/kam/requests", headers={"x-api-key": canary}, timeout=10)
        assert unknown.status_code == 401
    # The command's own lines for the operator come first; from uvicorn's start on, JSON.
    text = log.read_text()
    logged = text[text.index("\n{") + 1 :].splitlines()
    lines = [json.loads(line) for line in logged if line.strip()]
    assert any(line["logger"] == "uvicorn.error" for line in lines), lines
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
    mine = [line for line in lines if line["request_id"] == request_id]
    assert any("401" in line["message"] for line in mine), lines
    assert canary not in text
