"""The files of a home: owner-only when made, and a damaged or unreadable state database
refused on one line that names the file and what to do, from Python and from the CLI."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aifactory import FactoryConfig, StorageError
from aifactory.config import STORAGE_KEYS_FILE
from aifactory.state import SQLiteStore
from aifactory.storage.encryption import parse_keys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _close(store: SQLiteStore) -> None:
    anyio.run(store.aclose)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIFACTORY_")}
    return subprocess.run(
        [sys.executable, "-m", "aifactory.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _refused_on_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_a_new_home_its_database_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "home"
    # The most permissive umask: the modes must not come from it.
    with _umask(0):
        FactoryConfig(home=home).make_home()
        store = SQLiteStore(home / "state.sqlite3")
    try:
        # Open and migrated: the writer holds the WAL and its index.
        wal, shm = home / "state.sqlite3-wal", home / "state.sqlite3-shm"
        assert wal.exists()
        assert shm.exists()
        assert _mode(home) == 0o700
        assert {_mode(p) for p in (home / "state.sqlite3", wal, shm)} == {0o600}
    finally:
        _close(store)


def test_existing_files_keep_their_modes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o750)
    database = home / "state.sqlite3"
    database.touch()
    database.chmod(0o640)
    FactoryConfig(home=home).make_home()
    _close(SQLiteStore(database))
    assert (_mode(home), _mode(database)) == (0o750, 0o640)


def _damage(database: Path) -> None:
    """Garbage over a page in the middle of the file: one SQLite reads only when it needs
    that table or index."""
    size = database.stat().st_size
    assert size >= 16 * 4096, "too small a database to damage in the middle"
    with database.open("r+b") as file:
        file.seek(size // 2 // 4096 * 4096)
        file.write(b"\xa5" * 4096)


def _initialised_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    result = _cli("init", "--home", str(home), "--admin-email", "admin@example.com")
    assert result.returncode == 0, result.stderr
    return home


def test_a_damaged_database_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    home = _initialised_home(tmp_path)
    database = home / "state.sqlite3"
    _close(SQLiteStore(database))  # opens cleanly before the damage
    _damage(database)
    with pytest.raises(StorageError) as caught:
        SQLiteStore(database)
    message = caught.value.message
    assert "\n" not in message
    assert f"the state database {database} is damaged" in message
    assert "restore it from a backup" in message
    assert caught.value.details == {"database": str(database)}


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_the_cli_refuses_a_damaged_database_on_one_line(tmp_path: Path, command: str) -> None:
    home = _initialised_home(tmp_path)
    _damage(home / "state.sqlite3")
    args = ["serve", "factory", "--port", "1"] if command == "serve" else ["migrate"]
    line = _refused_on_one_line(_cli(*args, "--home", str(home)))
    assert f"the state database {home / 'state.sqlite3'} is damaged" in line
    assert "restore it from a backup" in line


def test_a_folder_where_the_database_should_be_is_named_with_what_to_do(tmp_path: Path) -> None:
    # Works as root too, unlike a file without read permission.
    home = tmp_path / "home"
    (home / "state.sqlite3").mkdir(parents=True)
    with pytest.raises(StorageError, match=r"cannot open the state database .*state\.sqlite3"):
        SQLiteStore(home / "state.sqlite3")
    line = _refused_on_one_line(_cli("serve", "factory", "--port", "1", "--home", str(home)))
    assert f"cannot open the state database {home / 'state.sqlite3'}" in line
    assert "check that it is a file this user can read and write" in line


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads files whatever their mode; the folder case above covers root",
)
def test_an_unreadable_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    home = _initialised_home(tmp_path)
    database = home / "state.sqlite3"
    database.chmod(0)
    try:
        with pytest.raises(StorageError, match="check that it is a file this user can read"):
            SQLiteStore(database)
        line = _refused_on_one_line(_cli("migrate", "--home", str(home)))
        assert f"cannot open the state database {database}" in line
    finally:
        database.chmod(0o600)


def test_init_makes_an_owner_only_key_file_and_the_blobs_are_sealed_with_it(
    tmp_path: Path,
) -> None:
    with _umask(0):
        home = _initialised_home(tmp_path)
    keys = home / STORAGE_KEYS_FILE
    assert _mode(keys) == 0o600
    [key] = parse_keys(keys.read_text())
    # A second init (refused: the factory has its admin) leaves the key alone.
    again = _cli("init", "--home", str(home), "--admin-email", "other@example.com")
    assert again.returncode == 1
    assert parse_keys(keys.read_text()) == (key,)
    demo = _cli("demo", "--home", str(home), "--out", str(tmp_path / "report.md"))
    assert demo.returncode == 0, demo.stderr
    assert key.secret.hex() not in demo.stdout + demo.stderr
    report = (tmp_path / "report.md").read_bytes()
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file() and ".meta" not in p.parts]
    assert blobs, "the demo stored no blob"
    lines = [line for line in report.splitlines() if len(line) > 24]
    for blob in blobs:
        stored = blob.read_bytes()
        assert stored.startswith(b"aifenc/1 " + key.key_id.encode() + b"\n")
        assert not any(line in stored for line in lines)
