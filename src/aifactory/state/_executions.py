"""The orchestrator's tables: executions, stage runs, checkpoints, events, the result cache.

Stage commits are the hot path (two per stage), so their writes touch only the columns that
change, through hand-built row values (`_rows`), and a checkpoint row holds only the outputs
its version adds: `latest_checkpoint` folds the versions back into the full map. Writing the
full map each time made checkpoints grow with the square of the pipeline's length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import cattrs

from .._exceptions import StaleAttemptError, StorageError
from ..models import (
    Checkpoint,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    RequestStatus,
    StageRun,
    StageStatus,
    StorageRef,
    Template,
)
from ..protocol.codec import converter, dumps
from . import _rows
from . import _tables as t
from ._leases import LeaseRecords
from ._payloads import PayloadColumns
from .writes import CacheEntry, ExecutionWrite, Pruned

__all__ = ["ExecutionRecords"]

_TEMPLATES_KEPT = 8
# Ids per DELETE ... IN (...): well under SQLite's limit on bound parameters.
_CHUNK = 500

_INSERT_EVENT = (
    "INSERT INTO events (execution_id, seq, at, kind, stage_id, data) VALUES (?, ?, ?, ?, ?, ?)"
)


class ExecutionRecords(PayloadColumns, LeaseRecords):
    """Executions and everything recorded while they run."""

    def add_execution(
        self, execution: Execution, stages: Sequence[StageRun], runnable: bool = False
    ) -> None:
        """Store a new execution with its stage runs (all pending), atomically; `runnable`:
        any replica may take it up (else it waits to be launched)."""
        row = _rows.execution_row(execution, self._template_json(execution.template))
        if runnable:
            row["runnable"] = True
        with self.transaction():
            self._insert_row(t.EXECUTIONS, row)
            if stages:
                rows = [_rows.stage_run_row(run, self._ref_column) for run in stages]
                self._executemany(self._insert_sql(t.STAGE_RUNS, rows[0]), rows)

    def _template_json(self, template: Template) -> str:
        # Executions of one template share its (frozen) object: encode it once. Keyed by
        # identity, since a template holds dicts and cannot be hashed.
        for kept, text in self._templates:
            if kept is template:
                return text
        text = _rows.json_text(converter.unstructure(template))
        self._templates = [(template, text), *self._templates[: _TEMPLATES_KEPT - 1]]
        return text

    def get_execution(self, execution_id: str) -> Execution:
        """The execution `execution_id`. Raises `NotFoundError`."""
        found = self._one(t.EXECUTIONS, "id = ?", (execution_id,))
        return self._must(found, "execution", execution_id)

    def execution_status(self, execution_id: str) -> tuple[ExecutionStatus, datetime] | None:
        """An execution's status and last update, or None: a cheap check for staleness."""
        row = self._execute(
            "SELECT status, updated_at FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            return None
        return ExecutionStatus(row[0]), datetime.fromisoformat(row[1])

    def list_executions(self, status: ExecutionStatus | None = None) -> list[Execution]:
        """Executions, optionally only those with `status`, oldest first."""
        if status is None:
            return self._many(t.EXECUTIONS, "TRUE ORDER BY created_at, id", ())
        return self._many(t.EXECUTIONS, "status = ? ORDER BY created_at, id", (status.value,))

    def get_stage_runs(self, execution_id: str) -> list[StageRun]:
        """The stage runs of an execution (in no particular order)."""
        rows = self._execute(
            "SELECT * FROM stage_runs WHERE execution_id = ?", (execution_id,)
        ).fetchall()
        values = [dict(row) for row in rows]
        docs = {
            (i, c): json.loads(v[c])
            for i, v in enumerate(values)
            for c in ("input_ref", "output_ref")
            if v[c] is not None
        }
        self._with_payloads(docs.values())
        for (i, column), doc in docs.items():
            values[i][column] = json.dumps(doc)
        return [t.STAGE_RUNS.from_row(v) for v in values]

    def start_stage(self, run: StageRun) -> None:
        """Record a new attempt of a stage, fenced: the stored attempt must be older.

        Writes the attempt's own columns (status, attempt, handshake, input, error, start
        time). Raises `StaleAttemptError` if an equal or newer attempt was recorded meanwhile.
        """
        with self.transaction():  # the input's payload, if any, commits with the row
            row = _rows.attempt_row(run, self._ref_column)
            sql = self._update_sql(t.STAGE_RUNS, row, " AND attempt < :attempt")
            self._fence(
                self._execute(sql, row),
                lambda: StaleAttemptError(
                    f"stage {run.stage_id} already has attempt {run.attempt} or newer",
                    details={"stage_id": run.stage_id, "attempt": run.attempt},
                ),
            )

    def _finish_stage(self, run: StageRun) -> None:
        """Write an attempt's outcome columns, fenced: the stored attempt must be this one,
        still running. Raises `StaleAttemptError` otherwise."""
        row = _rows.outcome_row(run, self._ref_column)
        sql = self._update_sql(t.STAGE_RUNS, row, " AND attempt = :_attempt AND status = :_running")
        row |= {"_attempt": run.attempt, "_running": StageStatus.RUNNING.value}
        self._fence(
            self._execute(sql, row),
            lambda: StaleAttemptError(
                f"stage {run.stage_id} attempt {run.attempt} is not the running attempt",
                details={"stage_id": run.stage_id, "attempt": run.attempt},
            ),
        )

    def record(self, write: ExecutionWrite) -> None:
        """Commit an `ExecutionWrite` in one transaction (see its docstring for the parts).

        Raises `StaleAttemptError` (an attempt fence failed) and `LeaseLostError` (the
        execution's lease is not `write.lease`, or `write.claim` lost the race); then nothing
        is written. On PostgreSQL the statements go out as one pipeline: with the commit, two
        round trips.
        """
        with self.transaction(), self.pipeline():
            if write.claim is not None:
                self.claim(write.execution_id, write.claim)
            elif write.lease is not None:
                self.check_lease(write.execution_id, write.lease)
            for run in write.started:
                self.start_stage(run)
            if write.finished is not None:
                self._finish_stage(write.finished)
            for run in write.runs:
                self._update_columns(t.STAGE_RUNS, _rows.stage_run_row(run, self._ref_column))
            if write.execution is not None:
                # A finished execution stays runnable and leased until its report is
                # delivered (`release_leases(..., finished=True)`): a replica that dies in
                # between leaves it for another to report.
                self._update_columns(t.EXECUTIONS, _rows.execution_progress(write.execution))
            elif write.totals is not None:
                self._update_columns(t.EXECUTIONS, _rows.execution_totals(write.totals))
            if write.checkpoint is not None:
                self._insert_checkpoint(write.checkpoint)
            if write.cache is not None:
                self.cache_put(write.cache)
            self.add_events(write.events)

    def _insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        completed = ",".join(
            f"{json.dumps(sid)}:{self._ref_column(ref)}"
            for sid, ref in sorted(checkpoint.completed.items())
        )
        self._execute(
            "INSERT INTO checkpoints (execution_id, version, completed, created_at) "
            "VALUES (?, ?, ?, ?)",
            (
                checkpoint.execution_id,
                checkpoint.version,
                f"{{{completed}}}",
                checkpoint.created_at.isoformat(),
            ),
        )

    def reopen(self, execution: Execution, runs: Sequence[StageRun]) -> None:
        """Store a reopened execution and its reset stage runs at once (unfenced)."""
        with self.transaction():
            for run in runs:
                self._update_columns(t.STAGE_RUNS, _rows.stage_run_row(run, self._ref_column))
            self._update_columns(t.EXECUTIONS, _rows.execution_progress(execution))

    def latest_checkpoint(self, execution_id: str) -> Checkpoint | None:
        """The newest checkpoint of an execution, with every output committed up to it.

        Each stored version holds the outputs it added; they are folded here, in version
        order, so a later version's entry for a stage wins.
        """
        rows = self._execute(
            "SELECT version, completed, created_at FROM checkpoints WHERE execution_id = ? "
            "ORDER BY version",
            (execution_id,),
        ).fetchall()
        if not rows:
            return None
        completed: dict[str, Any] = {}
        for row in rows:
            completed.update(json.loads(row[1]))
        self._with_payloads(completed.values())
        version, _, created_at = rows[-1]
        try:
            refs = {sid: converter.structure(ref, StorageRef) for sid, ref in completed.items()}
            return Checkpoint(execution_id, version, refs, datetime.fromisoformat(created_at))
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
            raise StorageError("corrupt row in table checkpoints") from exc

    def add_events(self, events: Sequence[ExecutionEvent]) -> None:
        """Append events."""
        if len(events) == 1:
            self._execute(_INSERT_EVENT, _rows.event_row(events[0]))
        elif events:
            with self.transaction():
                self._executemany(_INSERT_EVENT, [_rows.event_row(e) for e in events])

    def last_event_seq(self, execution_id: str) -> int:
        """The highest event sequence number of an execution (0 if none)."""
        sql = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE execution_id = ?"
        return int(self._execute(sql, (execution_id,)).fetchone()[0])

    def list_events(
        self, execution_id: str, after: int = 0, limit: int = 1000
    ) -> list[ExecutionEvent]:
        """Events of an execution with `seq > after`, in order."""
        where = "execution_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        return self._many(t.EVENTS, where, (execution_id, after, limit))

    def count_active_executions(self, client_id: str) -> int:
        """Executions of the client that are pending or running."""
        sql = "SELECT COUNT(*) FROM executions WHERE client_id = ? AND status IN (?, ?)"
        params = (client_id, ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)
        return int(self._execute(sql, params).fetchone()[0])

    # -- result cache and retention ----------------------------------------------------------

    def cache_get(self, key: str, now: datetime) -> tuple[StorageRef, dict[str, Any]] | None:
        """A cached stage result that has not expired, or None."""
        row = self._execute(
            "SELECT output_ref, summary FROM result_cache WHERE key = ? AND expires_at > ?",
            (key, now.isoformat()),
        ).fetchone()
        if row is None:
            return None
        ref = json.loads(row[0])
        self._with_payloads([ref])
        return converter.structure(ref, StorageRef), json.loads(row[1])

    def cache_put(self, entry: CacheEntry) -> None:
        """Remember a stage result until its `expires_at`."""
        with self.transaction():  # the output's payload, if any, commits with the entry
            self._execute(
                "INSERT INTO result_cache(key, worker, output_ref, summary, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "worker = excluded.worker, output_ref = excluded.output_ref, "
                "summary = excluded.summary, created_at = excluded.created_at, "
                "expires_at = excluded.expires_at",
                (
                    entry.key,
                    entry.worker,
                    self._ref_column(entry.output_ref),
                    dumps(entry.summary).decode(),
                    entry.created_at.isoformat(),
                    entry.expires_at.isoformat(),
                ),
            )

    def prune(self, finished_before: datetime, now: datetime) -> Pruned:
        """Forget what long-finished executions no longer need, in one transaction.

        Of executions that finished before `finished_before`: their checkpoints and events;
        and, of those that *completed*, their stages' inputs and outputs (the stage runs keep
        their status, times, usage and cost; the references go, and the payload rows behind
        them unless a live result-cache entry still points there). Failed and cancelled
        executions keep their stage data, since a retry reuses it, and so does a completed one
        whose request is still executing (not settled yet). Also expired cache entries.
        Running, pending and recently finished executions keep everything.

        Inputs and outputs held outside the database (KV files, R2 objects) are returned in
        `Pruned.blobs` for the caller to delete once this has committed.
        """
        final = tuple(s.value for s in ExecutionStatus if s.is_final)
        old = (
            "SELECT id FROM executions WHERE status IN (?, ?, ?) AND finished_at IS NOT NULL "
            "AND finished_at < ?"
        )
        params = (*final, finished_before.isoformat())
        # An execution whose request was never settled keeps its data: settling it later
        # (`resume`) collects its deliverables from its stage outputs.
        completed = (
            "SELECT id FROM executions WHERE status = ? AND finished_at IS NOT NULL "
            "AND finished_at < ? AND id NOT IN (SELECT execution_id FROM requests "
            "WHERE status = ? AND execution_id IS NOT NULL)"
        )
        completed_params = (
            ExecutionStatus.COMPLETED.value,
            finished_before.isoformat(),
            RequestStatus.EXECUTING.value,
        )
        counts: dict[str, int] = {}
        with self.transaction():
            for table in ("checkpoints", "events"):  # fixed names, not input
                sql = f"DELETE FROM {table} WHERE execution_id IN ({old})"  # noqa: S608
                counts[table] = self._execute(sql, params).rowcount
            counts["cache_entries"] = self._execute(
                "DELETE FROM result_cache WHERE expires_at <= ?", (now.isoformat(),)
            ).rowcount
            holding = (
                f"execution_id IN ({completed}) "
                "AND (input_ref IS NOT NULL OR output_ref IS NOT NULL)"
            )
            columns = self._execute(
                f"SELECT input_ref, output_ref FROM stage_runs WHERE {holding}",  # noqa: S608
                completed_params,
            ).fetchall()
            payloads, blobs = self._held(text for row in columns for text in row)
            payloads -= self._cached_payloads()
            counts["stage_data"] = self._execute(
                f"UPDATE stage_runs SET input_ref = NULL, output_ref = NULL WHERE {holding}",  # noqa: S608
                completed_params,
            ).rowcount
            counts["payloads"] = self._delete_payloads(sorted(payloads))
        return Pruned(counts, blobs)

    def _held(self, columns: Iterable[str | None]) -> tuple[set[int], list[StorageRef]]:
        """The payload ids and the outside references in reference columns."""
        payloads: set[int] = set()
        blobs: list[StorageRef] = []
        for text in columns:
            if text is None:
                continue
            doc = json.loads(text)
            if "payload" in doc:
                payloads.add(int(doc["payload"]))
            elif "inline" not in doc:
                try:
                    blobs.append(converter.structure(doc, StorageRef))
                except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
                    continue  # not a reference this store wrote: nothing of ours to delete
        return payloads, blobs

    def _cached_payloads(self) -> set[int]:
        rows = self._execute(
            "SELECT output_ref FROM result_cache WHERE output_ref LIKE '%\"payload\"%'"
        ).fetchall()
        return self._held(row[0] for row in rows)[0]

    def _delete_payloads(self, ids: Sequence[int]) -> int:
        deleted = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            deleted += self._execute(
                f"DELETE FROM payloads WHERE id IN ({marks})",  # noqa: S608 - only marks
                chunk,
            ).rowcount
        return deleted
