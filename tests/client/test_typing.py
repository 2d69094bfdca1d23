"""The SDK's types, as a user's type checker sees them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("typed_usage.py")


def _mypy(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sync_and_async_calls_return_the_same_domain_types(tmp_path: Path) -> None:
    checked = _mypy(SCRIPT, tmp_path / "cache")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # And the check can fail: a wrong expectation is caught.
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        SCRIPT.read_text().replace(
            "assert_type(execution, Execution)", "assert_type(execution, Request)", 1
        )
    )
    refused = _mypy(wrong, tmp_path / "cache")
    assert refused.returncode == 1
    assert 'Expression is of type "Execution", not "Request"' in refused.stdout
