"""The artifacts of a completed execution: what its deliverable stages' outputs list."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .._exceptions import StageFailedError
from ..models import StageSpec, StorageRef
from ..protocol.codec import structure
from ..storage import BlobStore
from .sink import Artifact

__all__ = ["collect_artifacts"]

_DESCRIBED = ("ref", "type", "name", "media_type")


async def collect_artifacts(
    stages: Iterable[StageSpec], outputs: Mapping[str, StorageRef], blobs: BlobStore
) -> tuple[Artifact, ...]:
    """The artifacts listed (`{"artifacts": [{"name", "ref", ...}]}`) in the outputs of
    `stages`. Raises `StageFailedError` if an output is not JSON."""
    found: list[Artifact] = []
    for stage in stages:
        ref = outputs.get(stage.id)
        if ref is None:
            continue
        try:
            output = json.loads(await blobs.aget(ref))
        except ValueError as exc:
            raise StageFailedError(f"stage {stage.id} output is not JSON") from exc
        for item in output.get("artifacts", []) if isinstance(output, dict) else []:
            found.append(
                Artifact(
                    stage.id,
                    str(item.get("type", "file")),
                    str(item["name"]),
                    str(item.get("media_type", "application/octet-stream")),
                    structure(item["ref"], StorageRef),
                    {k: v for k, v in item.items() if k not in _DESCRIBED},
                )
            )
    return tuple(found)
