"""`FactoryConfig` and the storage and fetch values it is built from: what they accept, what
they refuse at construction, and what a config read from the environment holds."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

import pytest

import aifactory
from aifactory import BadInputError, FactoryConfig, StorageConfig
from aifactory.workers import FetchPolicy


class _Folder(os.PathLike[str]):
    """A path-like that is not a `pathlib.Path`, as other libraries make them."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return str(self._path)


@pytest.mark.parametrize("kind", [str, Path, _Folder])
def test_home_may_be_any_path_and_a_factory_opens_on_it(
    kind: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = FactoryConfig(home=kind(Path("data") / "home"))
    assert config.home == Path("data/home")
    assert isinstance(config.home, Path)
    assert config.database == str(Path("data/home/state.sqlite3"))
    assert config.storage_config().root == str(tmp_path / "data" / "home" / "blobs")
    with aifactory.embedded(config=config) as factory:
        password = factory.bootstrap_admin("admin@example.com")
        factory.login("admin@example.com", password, login_type="admin")
    assert (tmp_path / "data" / "home" / "state.sqlite3").is_file()


def test_home_none_keeps_everything_in_memory() -> None:
    config = FactoryConfig(home=None)
    assert config.home is None
    assert config.database == ":memory:"
    assert config.storage_config().root.startswith("memory://")


@pytest.mark.parametrize("home", [42, b"bytes/home", ["a"]])
def test_a_home_that_is_no_path_is_refused(home: Any) -> None:
    with pytest.raises(BadInputError) as caught:
        FactoryConfig(home=home)
    assert caught.value.details == {"field": "home"}
    assert type(home).__name__ in caught.value.message


def test_other_path_fields_take_any_path_too(tmp_path: Path) -> None:
    assert StorageConfig(_Folder(tmp_path / "blobs")).root == str(tmp_path / "blobs")
    config = StorageConfig(tmp_path, r2_buckets={"media": tmp_path / "m"})
    assert (config.root, config.r2_url("media")) == (str(tmp_path), str(tmp_path / "m"))
    policy = FetchPolicy(allow_file=True, file_root=str(tmp_path))
    assert policy.file_root == tmp_path
    assert isinstance(policy.file_root, PurePath)


UNSUPPORTED = ["ftp://files.example/blobs", "sftp://host/p", "gs://bucket/p", "http://h/p"]


@pytest.mark.parametrize("url", UNSUPPORTED)
def test_unsupported_storage_is_refused_when_the_config_is_built(url: str) -> None:
    protocol = url.split("://")[0]
    expected = (
        f"unsupported storage protocol '{protocol}://': "
        "use a local folder, file://, memory:// or s3://bucket/prefix"
    )
    with pytest.raises(BadInputError) as root:
        StorageConfig(url)
    assert root.value.message == expected
    assert root.value.details["supported"] == ["file", "local", "memory", "s3", "s3a"]
    with pytest.raises(BadInputError, match="unsupported storage protocol") as override:
        StorageConfig("memory://main", kv_namespaces={"stages": url})
    assert override.value.details["field"] == "kv_namespaces.stages"
    with pytest.raises(BadInputError, match="unsupported storage protocol"):
        StorageConfig("memory://main", r2_buckets={"media": url})
    with pytest.raises(BadInputError) as by_url:
        FactoryConfig(home=None).with_storage_url(url)
    assert by_url.value.message == expected
    with pytest.raises(BadInputError) as from_env:
        FactoryConfig.from_environment(environ={"AIFACTORY_STORAGE": url})
    assert from_env.value.message == expected


def test_credentials_in_a_refused_url_stay_out_of_the_message() -> None:
    with pytest.raises(BadInputError) as caught:
        StorageConfig("ftp://user:hunter2-secret@files.example/p")
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in repr(caught.value.details)


@pytest.mark.parametrize(
    "url", ["blobs", "./blobs", "/srv/blobs", "file:///srv/blobs", "memory://x", "s3://b/p"]
)
def test_supported_storage_is_accepted(url: str) -> None:
    assert StorageConfig(url).root == url


def test_loopback_feeds_come_from_a_flag_or_the_environment() -> None:
    def policy(environ: dict[str, str], flag: bool | None = None) -> FetchPolicy | None:
        config = FactoryConfig.from_environment("home", allow_loopback_feeds=flag, environ=environ)
        return config.fetch_policy

    assert policy({}) is None  # the default policy: public addresses only
    for yes in ("1", "true", "YES", " on "):
        assert policy({"AIFACTORY_ALLOW_LOOPBACK_FEEDS": yes}) == FetchPolicy(allow_loopback=True)
    for no in ("", "0", "false", "off"):
        assert policy({"AIFACTORY_ALLOW_LOOPBACK_FEEDS": no}) is None
    assert policy({}, flag=True) == FetchPolicy(allow_loopback=True)
    assert policy({"AIFACTORY_ALLOW_LOOPBACK_FEEDS": "1"}, flag=False) is None  # the flag wins
    with pytest.raises(BadInputError, match="AIFACTORY_ALLOW_LOOPBACK_FEEDS must be 1 or 0"):
        policy({"AIFACTORY_ALLOW_LOOPBACK_FEEDS": "please"})
