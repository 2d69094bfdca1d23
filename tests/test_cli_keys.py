"""`aifactory keys new-master` and `keys rotate-master`: a master key written once (0600,
never over another), and rotation that re-wraps the data keys of a home's blobs."""

from __future__ import annotations

import stat
from pathlib import Path

import attrs
import pytest

from aifactory import StorageError
from aifactory.cli import main
from aifactory.config import MASTER_KEY_FILE, read_key_file
from aifactory.storage import BlobStore, StorageConfig
from aifactory.storage.encryption import parse_keys

_VARIABLES = (
    "AIFACTORY_HOME",
    "AIFACTORY_STORAGE",
    "AIFACTORY_STORAGE_ENDPOINT",
    "AIFACTORY_STORAGE_KEY",
    "AIFACTORY_MASTER_KEY",
    "AIFACTORY_MASTER_KEY_FILE",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_new_master_writes_a_private_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["keys", "new-master", "--home", str(home)]) == 0
    path = home / MASTER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [key] = read_key_file(path)
    assert key.key_id.startswith("m-")
    shown = capsys.readouterr()
    assert key.to_text().split(":")[1] not in shown.out + shown.err  # written, not shown
    assert main(["keys", "new-master", "--home", str(home)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert read_key_file(path) == (key,)
    # '-' prints a named key once instead, for a secret store or AIFACTORY_MASTER_KEY.
    assert main(["keys", "new-master", "m-2026", "--file", "-"]) == 0
    [printed] = parse_keys(capsys.readouterr().out)
    assert printed.key_id == "m-2026"


def test_rotate_master_rewraps_a_homes_data_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert main(["keys", "new-master", "--home", str(home)]) == 0
    [old] = read_key_file(home / MASTER_KEY_FILE)
    blobs = StorageConfig.local(home / "blobs")
    store = BlobStore(blobs)
    sealed = BlobStore(StorageConfig(blobs.root, master_keys=old, placement=blobs.placement))
    ref = sealed.put(b"confidential " * 200, namespace="artifacts", key="exe_1/r.md")
    new_file = tmp_path / "new.key"
    assert main(["keys", "new-master", "--file", str(new_file)]) == 0
    [new] = read_key_file(new_file)
    capsys.readouterr()

    assert main(["keys", "rotate-master", "--home", str(home), "--to", str(new_file)]) == 0
    assert "1 data key(s) re-wrapped by master key" in capsys.readouterr().err
    monkeypatch.setenv("AIFACTORY_MASTER_KEY_FILE", str(new_file))
    assert main(["keys", "rotate-master", "--home", str(home), "--to", str(new_file)]) == 0
    assert "0 data key(s) re-wrapped" in capsys.readouterr().err
    rotated = BlobStore(StorageConfig(blobs.root, master_keys=new, placement=blobs.placement))
    assert rotated.get(ref) == b"confidential " * 200
    # The old master key opens nothing any more (in a process that has not unwrapped it yet).
    with pytest.raises(StorageError, match="which is not configured"):
        BlobStore(attrs.evolve(sealed.config)).get(ref)
    monkeypatch.setenv("AIFACTORY_MASTER_KEY", f"{new.key_id}:{'A' * 43}")  # wrong secret
    (home / MASTER_KEY_FILE).unlink()
    other = tmp_path / "other.key"
    assert main(["keys", "new-master", "--file", str(other)]) == 0
    capsys.readouterr()
    assert main(["keys", "rotate-master", "--home", str(home), "--to", str(other)]) == 1
    err = capsys.readouterr().err
    assert "wrong master key" in err
    assert "Traceback" not in err
    assert store.exists(ref)
