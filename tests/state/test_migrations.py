"""Schema migrations: a home written by the previous release opens and keeps its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aifactory._clock import SystemClock
from aifactory.models import ExecutionStatus, RequestStatus
from aifactory.state import SQLiteStore
from aifactory.state._migrations import migrations
from aifactory.storage import BlobStore, StorageConfig

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).parent / "fixtures" / "home-v1"


def test_both_backends_have_the_same_migrations() -> None:
    sqlite = [(m.version, m.name) for m in migrations("sqlite")]
    assert sqlite == [(m.version, m.name) for m in migrations("postgres")]
    assert sqlite[0] == (1, "initial")


async def test_a_home_from_the_previous_release_opens_with_its_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    manifest = json.loads((home / "manifest.json").read_text())
    store = SQLiteStore(home / "state.sqlite3")
    try:
        version = await store.writer.write(lambda db: db.schema_version())
        assert version == migrations("sqlite")[-1].version
        counts = await store.writer.write(
            lambda db: {
                table: db._execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in manifest["counts"]
            }
        )
        assert counts == manifest["counts"]  # nothing lost
        [client] = await store.list_clients()
        [request] = await store.list_requests(client.id)
        assert request.status is RequestStatus.COMPLETED
        assert request.execution_id is not None
        execution = await store.get_execution(request.execution_id)
        assert execution.status is ExecutionStatus.COMPLETED
        assert all(r.output_ref is not None for r in await store.get_stage_runs(execution.id))
        [deliverable] = await store.list_deliverables(request.id)
        blobs = BlobStore(StorageConfig.local(home / "blobs"), SystemClock())
        assert blobs.get(deliverable.ref).startswith(b"#")  # the report, sha256-verified
    finally:
        await store.aclose()
