"""The embedded factory keeps stage payloads inline (committed with their stage), bills
them as the wire placement would, and keeps the wire thresholds for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory import FactoryConfig
from aifactory.config import EMBEDDED_STAGE_INLINE_BYTES
from aifactory.models import ExecutionStatus, StorageScheme
from aifactory.storage import BlobStore, PlacementPolicy
from aifactory.workers.host import ARTIFACT_NAMESPACE, STAGE_NAMESPACE
from tests.orchestrator.harness import Harness, Step, stage, template

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("home", [None, "folder"])
def test_the_embedded_default_keeps_stage_payloads_inline(tmp_path: Path, home: str | None) -> None:
    config = FactoryConfig(home=None if home is None else tmp_path / home).storage_config()
    assert config.placement_for(STAGE_NAMESPACE) == PlacementPolicy(
        inline_max_bytes=EMBEDDED_STAGE_INLINE_BYTES
    )
    assert config.placement_for(ARTIFACT_NAMESPACE) == PlacementPolicy()
    assert config.placement == PlacementPolicy()  # inline < 1 KiB, KV to 25 MiB, R2 above


def test_the_wire_placement_stays_one_setting_away(tmp_path: Path) -> None:
    config = FactoryConfig(home=tmp_path, stage_inline_max_bytes=None).storage_config()
    assert config.placement_for(STAGE_NAMESPACE) == PlacementPolicy()


class Big(Step):
    """Outputs about 5 KB: KV by the wire placement, inline by the embedded one."""

    async def process(self, action, inputs, params, ctx):  # type: ignore[no-untyped-def]
        result = await super().process(action, inputs, params, ctx)
        result.output["padding"] = "p" * 5000
        return result


@pytest.mark.parametrize("inline", [EMBEDDED_STAGE_INLINE_BYTES, None])
async def test_stage_outputs_cost_the_same_wherever_they_are_kept(
    inline: int | None,
) -> None:
    blobs = BlobStore(FactoryConfig(home=None, stage_inline_max_bytes=inline).storage_config())
    h = Harness([Big("big"), Step("next")], blobs=blobs)
    done = await h.run(template(stage("a", "big"), stage("b", "next", "a")))
    assert done.status is ExecutionStatus.COMPLETED
    runs = {r.stage_id: r for r in await h.store.get_stage_runs(done.id)}
    ref = runs["a"].output_ref
    assert ref is not None
    expected = StorageScheme.INLINE if inline else StorageScheme.KV
    assert ref.scheme is expected
    assert runs["a"].usage.bytes_stored == ref.size  # billed as stored either way
    assert runs["a"].cost.storage_usd > 0
    assert blobs.get(ref)  # readable, verified
