"""Kill a pipeline with SIGKILL at each point of a stage's life, resume it in a new process,
and check that committed stages never ran again and the deliverable is byte-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("outline", "summary", "report")
POINTS = ("before_process", "after_process", "during_checkpoint", "after_ack")


def _child(home: Path, *crash: str, state: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRASH_STATE_URL"}
    if state is not None:
        env["CRASH_STATE_URL"] = state
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.orchestrator.crash_child",
            str(home),
            str(home / "counters.txt"),
            str(home / "report.md"),
            *crash,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def _calls(home: Path) -> tuple[Counter[str], dict[str, list[int]]]:
    lines = [line.split() for line in (home / "counters.txt").read_text().splitlines()]
    attempts: dict[str, list[int]] = {}
    for stage, attempt in lines:
        attempts.setdefault(stage, []).append(int(attempt))
    return Counter(stage for stage, _ in lines), attempts


@pytest.fixture(scope="module")
def clean_report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    home = tmp_path_factory.mktemp("clean")
    result = _child(home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "completed"
    assert _calls(home)[0] == Counter(STAGES)
    return (home / "report.md").read_bytes()


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest) -> str | None:
    """Where the child keeps its state: the home's SQLite file, or a PostgreSQL schema."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("stage", ["summary", "report"])
def test_a_killed_pipeline_resumes_without_rerunning_committed_stages(
    tmp_path: Path, clean_report: bytes, stage: str, point: str, state: str | None
) -> None:
    crashed = _child(tmp_path, f"{stage}:{point}", state=state)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert not (tmp_path / "report.md").exists()

    resumed = _child(tmp_path, state=state)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "completed"

    counts, attempts = _calls(tmp_path)
    committed_before = STAGES[: STAGES.index(stage)]
    for earlier in committed_before:
        assert counts[earlier] == 1, f"{earlier} was acknowledged before the crash"
    if point == "before_process":
        assert attempts[stage] == [2]  # attempt 1 never reached the worker
    elif point == "after_ack":
        assert attempts[stage] == [1]  # committed before the crash: not run again
    else:
        assert attempts[stage] == [1, 2]  # in flight: exactly once more, as a new attempt
    for later in STAGES[STAGES.index(stage) + 1 :]:
        assert counts[later] == 1
    assert (tmp_path / "report.md").read_bytes() == clean_report
