"""`durable_floor`: what aifactory's durable writes cost with no orchestrator around them.

The benchmark's targets compare aifactory with a bare one-row commit and with LangGraph. This
system answers a different question: how much of aifactory's per-stage time is the work its
design says must happen for every stage, and how much is the orchestrator. It writes, with
`sqlite3` by hand, the rows aifactory's SQLite store writes for an execution of the benchmark
pipeline (same schema, same statements, same transactions), and does the encoding its worker
protocol needs (each stage's input document with its inline input, the sha256 of every
reference, the output's JSON), but nothing else: no event loop, no handshake, no attrs
objects, no group commit, no cost or quota bookkeeping.

Per execution, as `SQLiteStore` does it:

1. create: the execution row (with its template) and its five pending stage runs;
2. start: the execution turns running (and an event), in one transaction with stage 1's
   first attempt (its input document as a payload, the stage run, an event);
3. each stage: its output as a payload, the stage run's outcome, the execution's totals, a
   checkpoint version and an event, in one transaction with the next stage's first attempt
   or, the last stage, with the execution turning completed (and an event).

`log_floor` goes further: the least writing the issue's requirements leave (every attempt
durable before its worker sees it, one atomic checkpoint per stage, an event per change), as
an event-sourced store would do it: one append-only table, a row per event, each stage's
output in its `stage.succeeded` row (its input, derivable from earlier rows, as a digest),
one transaction per stage with the next attempt. No other table, no row ever updated; the
execution's state would be read by replaying the log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from _noop import STAGES, add_payload, noop_template

from aifactory.protocol.codec import dumps, unstructure
from aifactory.state._payloads import PAYLOAD_MIN_BYTES

__all__ = ["durable_floor_run", "log_floor_run"]

_UPDATE_START = (
    "UPDATE stage_runs SET status = 'running', attempt = ?, handshake_id = NULL, "
    "input_ref = ?, error = NULL, started_at = ? "
    "WHERE execution_id = ? AND stage_id = ? AND attempt < ?"
)
_UPDATE_OUTCOME = (
    "UPDATE stage_runs SET status = 'succeeded', handshake_id = ?, output_ref = ?, "
    "summary = ?, usage = ?, cost = ?, error = NULL, finished_at = ? "
    "WHERE execution_id = ? AND stage_id = ? AND attempt = ? AND status = 'running'"
)
_UPDATE_TOTALS = (
    "UPDATE executions SET updated_at = ?, usage = ?, cost = ?, stages_done = ? WHERE id = ?"
)
_UPDATE_STATUS = (
    "UPDATE executions SET status = ?, updated_at = ?, started_at = ?, finished_at = ?, "
    "error = NULL, runs = 1 WHERE id = ?"
)
_INSERT_EVENT = (
    "INSERT INTO events (execution_id, seq, at, kind, stage_id, data) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN = (
    "INSERT INTO stage_runs (execution_id, stage_id, worker, status, attempt, summary, usage, "
    "cost) VALUES (?, ?, ?, 'pending', 0, '{}', ?, ?)"
)
_INSERT_EXECUTION = (
    "INSERT INTO executions (id, template, parameters, status, created_at, updated_at, usage, "
    "cost, stages_total, stages_done, context, resources, runs) "
    "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, 0, '{}', ?, 0)"
)
_USAGE = '{"bytes_stored":%d,"completion_tokens":0,"compute_ms":0,"prompt_tokens":0}'
_COST = '{"compute_usd":"0","model_usd":"0","storage_usd":"0"}'


def _wal_database(path: Path) -> sqlite3.Connection:
    """A database in WAL mode with `synchronous=NORMAL`, aifactory's durability level."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _payload_ref(db: sqlite3.Connection, data: bytes) -> str:
    """The reference column for `data`: inline if small, else pointing at a new payload."""
    if len(data) < PAYLOAD_MIN_BYTES:
        return json.dumps(
            {
                "inline": base64.b64encode(data).decode(),
                "media_type": "application/json",
                "sha256": _sha256(data),
                "size": len(data),
            },
            separators=(",", ":"),
        )
    payload = db.execute("INSERT INTO payloads (data) VALUES (?)", (data,)).lastrowid
    return json.dumps(
        {
            "media_type": "application/json",
            "payload": payload,
            "sha256": _sha256(data),
            "size": len(data),
        },
        separators=(",", ":"),
    )


def _input_document(previous: bytes | None, params: dict[str, Any]) -> bytes:
    """The stage's input document: its one binding carries the previous output inline."""
    if previous is None:
        binding: dict[str, Any] = {"path": "data", "ref": None, "value": params["data"]}
    else:
        ref = {
            "inline": base64.b64encode(previous).decode(),
            "sha256": _sha256(previous),
            "size": len(previous),
        }
        binding = {"path": "", "ref": ref, "value": None}
    document = {"action": "noop", "bindings": {"data": binding}, "parameters": params}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _work(document: bytes, stage: int) -> bytes:
    """The worker's side: read the input document, check and decode its input, add the
    stage's payload and encode the output."""
    binding = json.loads(document)["bindings"]["data"]
    if binding["ref"] is None:
        data = binding["value"]
    else:
        raw = base64.b64decode(binding["ref"]["inline"])
        if _sha256(raw) != binding["ref"]["sha256"]:
            raise RuntimeError("the input does not match its digest")
        data = json.loads(raw)
    return json.dumps(add_payload(data, stage), separators=(",", ":")).encode()


@contextlib.contextmanager
def durable_floor_run(folder: Path) -> Iterator[Callable[[], dict[str, Any]]]:
    """One execution of the benchmark pipeline, as its durable writes and encoding alone."""
    db = _wal_database(folder / "floor.sqlite3")
    schema = resources.files("aifactory.state").joinpath("migrations", "sqlite", "0001_initial.sql")
    db.executescript(schema.read_text())
    template = dumps(unstructure(noop_template()))
    stage_ids = [f"s{i}" for i in range(1, STAGES + 1)]

    def run() -> dict[str, Any]:
        execution = f"exec_{uuid.uuid4().hex}"
        params = {"data": {"run": execution}}
        created = _now()
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            _INSERT_EXECUTION,
            (
                execution,
                template,
                json.dumps(params),
                created,
                created,
                _USAGE % 0,
                _COST,
                STAGES,
                '{"cache":false}',
            ),
        )
        for stage_id in stage_ids:
            db.execute(
                _INSERT_RUN, (execution, stage_id, f"noop_{stage_id[1:]}", _USAGE % 0, _COST)
            )
        db.execute("COMMIT")
        seq = 0

        def event(kind: str, stage_id: str | None, data: dict[str, Any]) -> None:
            nonlocal seq
            seq += 1
            db.execute(_INSERT_EVENT, (execution, seq, _now(), kind, stage_id, json.dumps(data)))

        def start(stage: int, document: bytes) -> None:
            stage_id = stage_ids[stage - 1]
            ref = _payload_ref(db, document)
            db.execute(_UPDATE_START, (1, ref, _now(), execution, stage_id, 1))
            event("stage.started", stage_id, {"attempt": 1})

        db.execute("BEGIN IMMEDIATE")
        started = _now()
        db.execute(_UPDATE_STATUS, ("running", started, started, None, execution))
        event("execution.started", None, {"run": 1})
        document = _input_document(None, params)
        start(1, document)
        db.execute("COMMIT")
        stored = 0
        for stage in range(1, STAGES + 1):
            stage_id = stage_ids[stage - 1]
            output = _work(document, stage)
            stored += len(output)
            db.execute("BEGIN IMMEDIATE")
            ref = _payload_ref(db, output)
            now = _now()
            db.execute(
                _UPDATE_OUTCOME,
                (
                    f"hs_{uuid.uuid4().hex}",
                    ref,
                    '{"method":"noop"}',
                    _USAGE % len(output),
                    _COST,
                    now,
                    execution,
                    stage_id,
                    1,
                ),
            )
            db.execute(_UPDATE_TOTALS, (now, _USAGE % stored, _COST, stage, execution))
            db.execute(
                "INSERT INTO checkpoints (execution_id, version, completed, created_at) "
                "VALUES (?, ?, ?, ?)",
                (execution, stage, f'{{"{stage_id}":{ref}}}', now),
            )
            event(
                "stage.succeeded",
                stage_id,
                {"attempt": 1, "method": "noop", "progress": stage * 100 // STAGES},
            )
            if stage < STAGES:
                document = _input_document(output, {})
                start(stage + 1, document)
            else:
                db.execute(_UPDATE_STATUS, ("completed", now, started, now, execution))
                event("execution.completed", None, {"error": None})
            db.execute("COMMIT")
        # What the last stage committed, read back (a benchmark of the wrong thing is
        # worse than none): its output's payload, as its stage run points at it.
        [(column,)] = db.execute(
            "SELECT output_ref FROM stage_runs WHERE execution_id = ? AND stage_id = ?",
            (execution, stage_ids[-1]),
        ).fetchall()
        [(body,)] = db.execute(
            "SELECT data FROM payloads WHERE id = ?", (json.loads(column)["payload"],)
        ).fetchall()
        return dict(json.loads(body))

    try:
        yield run
    finally:
        db.close()


@contextlib.contextmanager
def log_floor_run(folder: Path) -> Iterator[Callable[[], dict[str, Any]]]:
    """One execution of the benchmark pipeline as appends to one event log."""
    db = _wal_database(folder / "log.sqlite3")
    db.execute(
        "CREATE TABLE log (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, "
        "kind TEXT NOT NULL, stage_id TEXT, data TEXT NOT NULL, body BLOB, "
        "PRIMARY KEY (execution_id, seq)) WITHOUT ROWID"
    )

    def run() -> dict[str, Any]:
        execution = f"exec_{uuid.uuid4().hex}"
        params = {"data": {"run": execution}}
        seq = 0

        def append(kind: str, stage_id: str | None, data: dict[str, Any], body: Any = None) -> None:
            nonlocal seq
            seq += 1
            db.execute(
                "INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)",
                (execution, seq, _now(), kind, stage_id, json.dumps(data), body),
            )

        def start(stage: int, document: bytes) -> None:
            # The input is derivable from the log (earlier outputs, the parameters): its
            # digest is enough to tell that a rerun gets the same.
            append("stage.started", f"s{stage}", {"attempt": 1, "input": _sha256(document)})

        db.execute("BEGIN IMMEDIATE")
        append("execution.created", None, {"template": "bench_noop", "parameters": params})
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        append("execution.started", None, {"run": 1})
        document = _input_document(None, params)
        start(1, document)
        db.execute("COMMIT")
        for stage in range(1, STAGES + 1):
            output = _work(document, stage)
            db.execute("BEGIN IMMEDIATE")
            append(
                "stage.succeeded", f"s{stage}", {"attempt": 1, "output": _sha256(output)}, output
            )
            if stage < STAGES:
                document = _input_document(output, {})
                start(stage + 1, document)
            else:
                append("execution.completed", None, {})
            db.execute("COMMIT")
        [(body,)] = db.execute(
            "SELECT body FROM log WHERE execution_id = ? AND kind = 'stage.succeeded' "
            "ORDER BY seq DESC LIMIT 1",
            (execution,),
        ).fetchall()
        return dict(json.loads(body))

    try:
        yield run
    finally:
        db.close()
