"""PlacementPolicy and StorageConfig: values without I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aifactory.storage
from aifactory._exceptions import BadInputError, UnsafeKeyError
from aifactory.models.enums import StorageScheme
from aifactory.storage import PlacementPolicy, StorageConfig

MIB = 1024 * 1024


def test_exported_names() -> None:
    assert sorted(aifactory.storage.__all__) == [
        "BlobStore",
        "PlacementPolicy",
        "StorageConfig",
        "StorageKey",
    ]
    for name in aifactory.storage.__all__:
        assert getattr(aifactory.storage, name).__module__.startswith("aifactory.storage.")


@pytest.mark.parametrize(
    ("size", "scheme"),
    [
        (0, StorageScheme.INLINE),
        (1023, StorageScheme.INLINE),
        (1024, StorageScheme.KV),
        (25 * MIB, StorageScheme.KV),
        (25 * MIB + 1, StorageScheme.R2),
    ],
)
def test_default_placement(size: int, scheme: StorageScheme) -> None:
    assert PlacementPolicy().scheme_for(size) is scheme


def test_gzip_threshold_is_inclusive() -> None:
    policy = PlacementPolicy()
    assert policy.gzips(10 * 1024)
    assert not policy.gzips(10 * 1024 - 1)


def test_zero_inline_limit_puts_even_empty_blobs_in_kv() -> None:
    assert PlacementPolicy(inline_max_bytes=0).scheme_for(0) is StorageScheme.KV


def test_negative_size_is_refused() -> None:
    with pytest.raises(BadInputError):
        PlacementPolicy().scheme_for(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"inline_max_bytes": -1},
        {"kv_max_bytes": -1},
        {"gzip_min_bytes": -1},
        {"inline_max_bytes": 2048, "kv_max_bytes": 1024},
        {"inline_max_bytes": True},
        {"kv_max_bytes": 1.5},
    ],
)
def test_invalid_policy(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        PlacementPolicy(**kwargs)


def test_memory_configs_never_share_a_root() -> None:
    roots = {StorageConfig.memory().root for _ in range(50)} | {StorageConfig.memory("x").root}
    assert len(roots) == 51
    assert all(root.startswith("memory://") for root in roots)
    assert StorageConfig.memory("named").root.startswith("memory://named-")


def test_memory_name_must_be_a_plain_name() -> None:
    with pytest.raises(UnsafeKeyError):
        StorageConfig.memory("../up")


def test_local_config_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = StorageConfig.local("data")
    assert config.root == str(tmp_path / "data")
    assert config.kv_url("ns") == f"{tmp_path / 'data'}/kv/ns"
    assert config.r2_url("b") == f"{tmp_path / 'data'}/r2/b"


def test_urls_default_under_root_and_follow_overrides() -> None:
    config = StorageConfig(
        "s3://bucket/prefix/",
        kv_namespaces={"fast": "memory://fast"},
        r2_buckets={"media": "s3://media-bucket"},
    )
    assert config.kv_url("fast") == "memory://fast"
    assert config.kv_url("slow") == "s3://bucket/prefix/kv/slow"
    assert config.r2_url("media") == "s3://media-bucket"
    assert config.r2_url("fast") == "s3://bucket/prefix/r2/fast"
    with pytest.raises(UnsafeKeyError):
        config.kv_url("../x")


def test_config_keeps_its_own_copy_of_mappings() -> None:
    overrides = {"a": "memory://a"}
    options: dict[str, dict[str, Any]] = {"s3": {"endpoint_url": "http://127.0.0.1:9000"}}
    config = StorageConfig("memory://root", kv_namespaces=overrides, storage_options=options)
    overrides["a"] = "memory://elsewhere"
    options["s3"]["endpoint_url"] = "http://evil"
    assert config.kv_url("a") == "memory://a"
    assert config.storage_options == {"s3": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert "endpoint_url" not in repr(config)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"root": ""},
        {"root": "memory://r", "kv_namespaces": {"a": ""}},
        {"root": "memory://r", "r2_buckets": {"b": "  "}},
    ],
)
def test_empty_locations_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadInputError):
        StorageConfig(**kwargs)


def test_override_names_must_be_valid_namespaces() -> None:
    with pytest.raises(UnsafeKeyError):
        StorageConfig("memory://r", r2_buckets={"Bad/Name": "memory://x"})


def test_a_namespace_may_have_its_own_placement() -> None:
    roomy = PlacementPolicy(inline_max_bytes=64 * 1024)
    config = StorageConfig.memory(placements={"stages": roomy})
    assert config.placement_for("stages") is roomy
    assert config.placement_for("artifacts") == PlacementPolicy()  # the wire default
    assert config.placement_for("stages").scheme_for(5000) is StorageScheme.INLINE
    assert config.placement_for("artifacts").scheme_for(5000) is StorageScheme.KV


def test_namespace_placements_are_checked() -> None:
    with pytest.raises(UnsafeKeyError):
        StorageConfig.memory(placements={"../x": PlacementPolicy()})
    with pytest.raises(BadInputError):
        StorageConfig.memory(placements={"stages": 65536})  # type: ignore[dict-item]
