"""The `aifactory` command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(
    *args: str, stdin: str | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AIFACTORY_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "aifactory.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
        cwd=home,
    )


def test_demo_writes_a_non_empty_report(tmp_path: Path) -> None:
    result = _run("demo", "--home", str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.is_file()
    assert report.read_text().startswith("# ")
    assert "✓ stage outline" in result.stderr
    assert "✓ stage report" in result.stderr
    # A second run on the same home needs the admin password it never showed.
    again = _run("demo", "--home", str(tmp_path / "home"))
    assert again.returncode == 2
    assert "already has an admin" in again.stderr


def test_demo_defaults_to_a_fresh_temporary_home(tmp_path: Path) -> None:
    result = _run("demo", "--template", "educational_course_basic", home=tmp_path)
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.read_text().startswith("# ")
    assert not (tmp_path / ".aifactory").exists()


def test_init_prints_a_generated_password_once(tmp_path: Path) -> None:
    first = _run("init", "--home", str(tmp_path), "--admin-email", "root@factory.example")
    assert first.returncode == 0, first.stderr
    password = first.stderr.split("store it now):")[1].split()[0]
    assert len(password) >= 20
    second = _run("init", "--home", str(tmp_path), "--admin-email", "other@factory.example")
    assert second.returncode == 1
    assert "admin already exists" in second.stderr
    assert password not in second.stderr

    import aifactory

    with aifactory.embedded(tmp_path) as factory:
        factory.login("root@factory.example", password, login_type="admin")


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_init_takes_a_given_password_and_never_echoes_it(tmp_path: Path, how: str) -> None:
    secret = "given-admin-password"
    args = ["init", "--home", str(tmp_path), "--admin-email", "root@factory.example"]
    if how == "argument":
        result = _run(*args, "--admin-password", secret)
    else:
        result = _run(*args, "--admin-password", "-", stdin=secret + "\n")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    short = _run(
        "init",
        "--home",
        str(tmp_path / "x"),
        "--admin-email",
        "a@b.example",
        "--admin-password",
        "short",
    )
    assert short.returncode == 1
    assert "12 to 1024 characters" in short.stderr
