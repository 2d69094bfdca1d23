"""Row values for the tables the orchestrator writes on every stage, built without cattrs.

`Table.to_row` unstructures a whole model through cattrs and re-serialises every column;
a stage commit only changes a few columns of a few rows. These build exactly those columns,
as the same text the codec would write (compact, key-sorted JSON), so `Table.from_row` reads
them back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import Cost, Execution, ExecutionEvent, StageRun, StorageRef, Usage
from ..protocol.codec import converter, json_text

__all__ = [
    "RefColumn",
    "attempt_row",
    "cost_json",
    "event_row",
    "execution_progress",
    "execution_row",
    "execution_totals",
    "json_text",
    "outcome_row",
    "ref_json",
    "stage_run_row",
    "usage_json",
]


_ENCODE = json_text  # rows are built from the models, which hold no cycles

#: Turns a storage reference into its column text (the store may move inline bytes aside).
RefColumn = Callable[[StorageRef | None], str | None]


def ref_json(ref: StorageRef | None) -> str | None:
    """A storage reference column."""
    return None if ref is None else _ENCODE(converter.unstructure(ref))


def usage_json(usage: Usage) -> str:
    """A `Usage` column (key-sorted, like the codec)."""
    return (
        f'{{"bytes_stored":{usage.bytes_stored},"completion_tokens":{usage.completion_tokens},'
        f'"compute_ms":{usage.compute_ms},"model_calls":{usage.model_calls},'
        f'"prompt_tokens":{usage.prompt_tokens}}}'
    )


def cost_json(cost: Cost) -> str:
    """A `Cost` column: amounts as decimal strings, which never need JSON escaping."""
    return (
        f'{{"compute_usd":"{cost.compute_usd}","llm_usd":"{cost.llm_usd}",'
        f'"storage_usd":"{cost.storage_usd}"}}'
    )


def _when(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def stage_run_row(run: StageRun, ref: RefColumn = ref_json) -> dict[str, Any]:
    """Every column of `run`."""
    return {
        "execution_id": run.execution_id,
        "stage_id": run.stage_id,
        "worker": run.worker,
        "status": run.status.value,
        "attempt": run.attempt,
        "handshake_id": run.handshake_id,
        "input_ref": ref(run.input_ref),
        "output_ref": ref(run.output_ref),
        "summary": _ENCODE(run.summary) if run.summary else "{}",
        "usage": usage_json(run.usage),
        "cost": cost_json(run.cost),
        "error": run.error,
        "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at),
    }


def attempt_row(run: StageRun, ref: RefColumn = ref_json) -> dict[str, Any]:
    """The key of `run` and the columns a new attempt sets (`start_stage`)."""
    return {
        "execution_id": run.execution_id,
        "stage_id": run.stage_id,
        "status": run.status.value,
        "attempt": run.attempt,
        "handshake_id": run.handshake_id,
        "input_ref": ref(run.input_ref),
        "error": run.error,
        "started_at": _when(run.started_at),
    }


def outcome_row(run: StageRun, ref: RefColumn = ref_json) -> dict[str, Any]:
    """The key of `run` and the columns an attempt's outcome sets (`finish_stage`)."""
    return {
        "execution_id": run.execution_id,
        "stage_id": run.stage_id,
        "status": run.status.value,
        "handshake_id": run.handshake_id,
        "output_ref": ref(run.output_ref),
        "summary": _ENCODE(run.summary),
        "usage": usage_json(run.usage),
        "cost": cost_json(run.cost),
        "error": run.error,
        "finished_at": _when(run.finished_at),
    }


def execution_row(execution: Execution, template: str) -> dict[str, Any]:
    """Every column of a new execution; `template` is its template's JSON text."""
    return execution_progress(execution) | {
        "request_id": execution.request_id,
        "client_id": execution.client_id,
        "template": template,
        "parameters": _ENCODE(execution.parameters),
        "created_at": execution.created_at.isoformat(),
        "context": _ENCODE(execution.context),
        "resources": _ENCODE(execution.resources),
        "trace": execution.trace,
    }


def execution_progress(execution: Execution) -> dict[str, Any]:
    """The columns of an execution that change while it runs.

    Template, parameters, context and resources are fixed when the execution is created;
    leaving them out spares re-encoding kilobytes of template on every stage.
    """
    return {
        "id": execution.id,
        "status": execution.status.value,
        "updated_at": execution.updated_at.isoformat(),
        "started_at": _when(execution.started_at),
        "finished_at": _when(execution.finished_at),
        "error": execution.error,
        "usage": usage_json(execution.usage),
        "cost": cost_json(execution.cost),
        "stages_total": execution.stages_total,
        "stages_done": execution.stages_done,
        "runs": execution.runs,
    }


def execution_totals(execution: Execution) -> dict[str, Any]:
    """The columns a stage commit changes: what the execution used and cost so far, how many
    stages are done, and when. Leaving the indexed status out spares its index pages."""
    return {
        "id": execution.id,
        "updated_at": execution.updated_at.isoformat(),
        "usage": usage_json(execution.usage),
        "cost": cost_json(execution.cost),
        "stages_done": execution.stages_done,
    }


def event_row(event: ExecutionEvent) -> tuple[Any, ...]:
    """An `events` row, in column order."""
    return (
        event.execution_id,
        event.seq,
        event.at.isoformat(),
        event.kind,
        event.stage_id,
        _ENCODE(event.data),
    )
