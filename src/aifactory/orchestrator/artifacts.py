"""The artifacts of a completed execution: what its deliverable stages' outputs list.

Each artifact's metadata records where it came from: `format` (the stage's own word for it,
else one derived from the media type), `size` and `sha256` (of the stored bytes, from its
reference), `stage_id` and `stages`, the stage that made it and every stage it drew on,
directly or not, in template order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import StageFailedError
from ..models import StorageRef
from ..protocol.codec import structure
from ..storage import BlobStore
from .planning import TemplatePlan
from .sink import Artifact

__all__ = ["collect_artifacts", "media_format", "stage_lineage"]

_DESCRIBED = ("ref", "type", "name", "media_type")
_FORMATS = {
    "text/markdown": "markdown",
    "text/html": "html",
    "application/json": "json",
    "application/pdf": "pdf",
    "text/plain": "text",
}


def media_format(media_type: str) -> str:
    """The format word for a media type (`text/markdown; charset=utf-8` → `markdown`);
    the subtype for one not listed."""
    bare = media_type.split(";")[0].strip().lower()
    return _FORMATS.get(bare, bare.rpartition("/")[2] or "file")


def stage_lineage(plan: TemplatePlan, stage_id: str) -> list[str]:
    """`stage_id` and every stage it depends on, directly or not, in template order."""
    wanted, todo = {stage_id}, [stage_id]
    while todo:
        for dep in plan.deps.get(todo.pop(), frozenset()):
            if dep not in wanted:
                wanted.add(dep)
                todo.append(dep)
    return [s.id for s in plan.template.stages if s.id in wanted]


def _metadata(
    plan: TemplatePlan, stage_id: str, item: Mapping[str, Any], ref: StorageRef
) -> dict[str, Any]:
    extra = {k: v for k, v in item.items() if k not in _DESCRIBED}
    media_type = str(item.get("media_type", "application/octet-stream"))
    return {
        **extra,
        "format": str(extra.get("format") or media_format(media_type)),
        "size": ref.size,
        "sha256": ref.sha256,
        "stages": stage_lineage(plan, stage_id),
    }


async def collect_artifacts(
    plan: TemplatePlan, outputs: Mapping[str, StorageRef], blobs: BlobStore
) -> tuple[Artifact, ...]:
    """The artifacts listed (`{"artifacts": [{"name", "ref", ...}]}`) in the outputs of the
    plan's deliverable stages, with their provenance (module docstring) in their metadata.
    Raises `StageFailedError` if an output is not JSON."""
    found: list[Artifact] = []
    for stage in plan.deliverables:
        ref = outputs.get(stage.id)
        if ref is None:
            continue
        try:
            output = json.loads(await blobs.aget(ref))
        except ValueError as exc:
            raise StageFailedError(f"stage {stage.id} output is not JSON") from exc
        for item in output.get("artifacts", []) if isinstance(output, dict) else []:
            stored = structure(item["ref"], StorageRef)
            found.append(
                Artifact(
                    stage.id,
                    str(item.get("type", "file")),
                    str(item["name"]),
                    str(item.get("media_type", "application/octet-stream")),
                    stored,
                    _metadata(plan, stage.id, item, stored),
                )
            )
    return tuple(found)
