"""`aifactory admin reset-password`, run as an operator runs it (a real subprocess): the way
back in when an admin's password is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aifactory
from aifactory import AuthenticationError

ADMIN = "root@factory.example"
#: Installed by the `dev` extra only: a plain `pip install .` has none of them.
DEV_ONLY = ("pytest", "hypothesis", "trio", "moto", "s3fs", "psycopg", "schemathesis", "trustme")
# Runs the command with the dev-only packages unimportable, as after a plain install.
PLAIN = f"""
import sys
class _Plain:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEV_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (plain install)")
sys.meta_path.insert(0, _Plain())
from aifactory.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIFACTORY_")}
    return subprocess.run(
        [sys.executable, "-c", PLAIN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _password(output: str) -> str:
    return output.split("store it now):")[1].split()[0]


def test_reset_password_prints_a_new_one_once_and_ends_sessions(tmp_path: Path) -> None:
    made = _run("init", "--home", str(tmp_path), "--admin-email", ADMIN)
    assert made.returncode == 0, made.stderr
    lost = _password(made.stderr)
    with aifactory.embedded(tmp_path) as factory:
        session = factory.login(ADMIN, lost, login_type="admin")
        token = session.token

    reset = _run("admin", "reset-password", "--home", str(tmp_path), ADMIN.upper())
    assert reset.returncode == 0, reset.stderr
    password = _password(reset.stderr)
    assert len(password) >= 20
    assert password != lost
    assert reset.stderr.count(password) == 1
    assert password not in reset.stdout
    assert "1 session(s) of the user revoked" in reset.stderr

    with aifactory.embedded(tmp_path) as factory:
        with pytest.raises(AuthenticationError):
            factory.login(ADMIN, lost, login_type="admin")
        with pytest.raises(AuthenticationError):
            factory.session(token)
        admin = factory.login(ADMIN, password, login_type="admin")
        [event] = admin.audit.list(action="user.password_reset")
        assert (event.actor, event.outcome, event.details) == (
            "system",
            "ok",
            {"sessions_revoked": 1, "via": "cli"},
        )
        assert f"user:{admin.user.id}" == event.target
        assert password not in repr(admin.audit.list(limit=1000))


def test_reset_password_refuses_an_unknown_user_or_home(tmp_path: Path) -> None:
    made = _run("init", "--home", str(tmp_path / "home"), "--admin-email", ADMIN)
    assert made.returncode == 0, made.stderr
    unknown = _run("admin", "reset-password", "--home", str(tmp_path / "home"), "x@y.example")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no user with email x@y.example"
    nowhere = _run("admin", "reset-password", "--home", str(tmp_path / "none"), ADMIN)
    assert nowhere.returncode == 2
    assert "no factory at" in nowhere.stderr
    assert not (tmp_path / "none").exists()  # nothing was made there
    usage = _run("admin", "reset-password", "--home", str(tmp_path / "home"))
    assert usage.returncode == 2
