"""The examples run as a user runs them (subprocesses; servers on 127.0.0.1 only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, home: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(home)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_embedded_quickstart(tmp_path: Path) -> None:
    out = _run("embedded_quickstart.py", tmp_path)
    assert "execution.completed" in out
    assert (tmp_path / "report.md").read_text().startswith("# ")


def test_the_deployment_runs_a_request_through_separate_processes(tmp_path: Path) -> None:
    out = _run("deployment.py", tmp_path)
    assert "stage.succeeded      report" in out
    assert "execution.completed" in out
    assert "report: " in out
    assert "# Research report" in out
    # Encryption at rest is on: every stored blob is sealed with a data key.
    stored = [tmp_path / "blobs" / place for place in ("kv", "r2")]
    blobs = [p for folder in stored for p in folder.rglob("*") if p.is_file()]
    assert blobs
    assert all(p.read_bytes().startswith(b"aifenc/2 dk-") for p in blobs)
    assert list((tmp_path / "blobs" / "keys" / "data").glob("dk-*.json"))
