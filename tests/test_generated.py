"""Generated files are what their generators write today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_sync_resource_twins_are_up_to_date() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_sync_resources.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
