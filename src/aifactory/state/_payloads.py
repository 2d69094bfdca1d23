"""Inline storage references whose bytes live in their own table, written once.

An inline reference's bytes used to sit, base64-encoded, in the JSON column of every row
holding the reference: a stage run rewritten at each step of its life, a checkpoint, a cache
entry. Since an SQLite UPDATE rewrites the whole row, a few-KB output cost several pages per
commit. Bytes of at least `PAYLOAD_MIN_BYTES` go instead to the insert-only `payloads` table
(raw, appended in rowid order) and the column holds `{"payload": id, "size", "sha256",
"media_type"}`. Reads put the bytes back; `BlobStore.get` still verifies size and sha256.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from ..models import StorageRef
from ..models.enums import StorageScheme
from . import _rows
from ._sql import Database

__all__ = ["PAYLOAD_MIN_BYTES", "PayloadColumns"]

#: Smaller inline data stays in the row: it fits the row's page anyway.
PAYLOAD_MIN_BYTES = 512


class PayloadColumns(Database):
    """Encoding and decoding of storage-reference columns, with payloads set aside."""

    def _ref_column(self, ref: StorageRef | None) -> str | None:
        """The column text of `ref`; large inline bytes are written to `payloads` once per
        transaction (the same reference object written twice shares one payload)."""
        if ref is None or ref.scheme is not StorageScheme.INLINE:
            return _rows.ref_json(ref)
        assert ref.data is not None
        if len(ref.data) < PAYLOAD_MIN_BYTES:
            return _rows.ref_json(ref)
        seen = self._written.get(id(ref))
        if seen is not None and seen[0] is ref:
            return str(seen[1])
        payload = self._new_payload_id()
        if payload is None:
            [payload] = self._execute(
                "INSERT INTO payloads (data) VALUES (?) RETURNING id", (ref.data,)
            ).fetchone()
        else:
            self._execute("INSERT INTO payloads (id, data) VALUES (?, ?)", (payload, ref.data))
        text = _rows.json_text(
            {
                "media_type": ref.media_type,
                "payload": int(payload),
                "sha256": ref.sha256,
                "size": ref.size,
            }
        )
        if self._depth:  # outside a transaction there is nothing to share it with
            self._written[id(ref)] = (ref, text)
        return text

    def _new_payload_id(self) -> int | None:
        """An id for the next payload, known before its INSERT (which then needs no answer,
        and can go out in a pipeline); `None`: the INSERT returns one."""
        return None

    def _with_payloads(self, refs: Iterable[dict[str, Any]]) -> None:
        """Put the bytes back into reference documents that point at a payload (in place),
        in the codec's inline form."""
        pending = [ref for ref in refs if isinstance(ref, dict) and "payload" in ref]
        if not pending:
            return
        ids = sorted({int(ref["payload"]) for ref in pending})
        marks = ", ".join("?" * len(ids))
        rows = self._execute(
            f"SELECT id, data FROM payloads WHERE id IN ({marks})",  # noqa: S608 - only marks
            ids,
        ).fetchall()
        found = {int(row[0]): base64.b64encode(row[1]).decode("ascii") for row in rows}
        for ref in pending:
            # A missing payload leaves no data: the reference then fails to load as corrupt.
            data = found.get(int(ref.pop("payload")))
            if data is not None:
                ref["inline"] = data
