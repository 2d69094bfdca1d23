"""Rich display in Jupyter: the bodies of the models' `_repr_html_` methods.

Each value renders as a small card: a heading line and a two-column table, a few inline
styles, no classes, scripts or external resources. Everything is escaped with `html.escape`
on the way in, ids and enum values included: titles, descriptions, errors, parameters and
metadata come from users and workers, and a title like `<script>...</script>` must show as
text. Free-form values are cut to a budget first, so a huge dict never floods a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from ._display import bounded, iso, plain_decimal

if TYPE_CHECKING:
    from .execution import Cost, Execution, ExecutionEvent, StageRun, Usage
    from .storage_ref import StorageRef
    from .work import Deliverable, Request, Template

__all__ = ["deliverable", "event", "execution", "request", "stage_run", "template"]

# Budgets in characters: a card has room for more than a repr, but stays a card.
_LONG_TEXT = 2000
_MAPPING = 400
_TITLE = 200

_CARD = "font-family: sans-serif; font-size: 13px; line-height: 1.4; max-width: 52em"
_CELL = "text-align: left; vertical-align: top; padding: 1px 12px 1px 0"
_LABEL = _CELL + "; font-weight: 600; color: #555; white-space: nowrap"
_TABLE = "border-collapse: collapse; margin-top: 4px"
_PRE = "white-space: pre-wrap; margin: 0; font-size: 12px"
# Status colours: done, broken, stopped, moving, waiting.
_COLOURS = {
    "completed": "#1a7f37",
    "succeeded": "#1a7f37",
    "failed": "#cf222e",
    "cancelled": "#6e7781",
    "skipped": "#6e7781",
    "running": "#0969da",
    "executing": "#0969da",
    "pending": "#9a6700",
    "template_assigned": "#9a6700",
}


def _text(value: Any) -> str:
    """Any value as escaped text; enums by their value."""
    if isinstance(value, Enum):
        value = value.value
    return html.escape(str(value), quote=True)


def _cut(value: str, budget: int) -> str:
    return value if len(value) <= budget else value[: budget - 1] + "…"


def _code(value: Any) -> str:
    return f"<code>{_text(value)}</code>"


def _when(value: datetime | None) -> str:
    return "—" if value is None else _text(iso(value))


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return f"{(end - start).total_seconds():.3f} s"


def _usd(value: Decimal) -> str:
    return "$" + _text(plain_decimal(value))


def _size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _status(value: Enum) -> str:
    colour = _COLOURS.get(str(value.value), "#6e7781")
    style = f"color: #fff; background: {colour}; border-radius: 3px; padding: 0 5px"
    return f'<span style="{style}">{_text(value)}</span>'


def _mapping(value: Any) -> str:
    """A dict or other free-form value as its bounded repr, escaped, or a dash if empty."""
    return _code(bounded(value, _MAPPING)) if value else "—"


def _pre(value: str) -> str:
    return f'<pre style="{_PRE}">{_text(_cut(value, _LONG_TEXT))}</pre>'


def _usage(usage: Usage) -> str:
    return (
        f"{usage.tokens} tokens ({usage.prompt_tokens} prompt, {usage.completion_tokens} "
        f"completion), {_size(usage.bytes_stored)} stored, {usage.compute_ms} ms compute"
    )


def _cost(cost: Cost) -> str:
    return (
        f"{_usd(cost.total_usd)} (LLM {_usd(cost.llm_usd)}, storage {_usd(cost.storage_usd)}, "
        f"compute {_usd(cost.compute_usd)})"
    )


def _ref(ref: StorageRef | None) -> str:
    if ref is None:
        return "—"
    return f"{_code(ref.uri)} ({_size(ref.size)}, {_text(ref.media_type)})"


def _table(rows: Iterable[tuple[str, str]]) -> str:
    """Label/value rows; labels are ours, values are already escaped markup."""
    body = "".join(
        f'<tr><th style="{_LABEL}">{label}</th><td style="{_CELL}">{cell}</td></tr>'
        for label, cell in rows
    )
    return f'<table style="{_TABLE}">{body}</table>'


def _grid(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table with a header row; cells are already escaped markup."""
    head = "".join(f'<th style="{_LABEL}">{header}</th>' for header in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{cell}</td>' for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table style="{_TABLE}"><tr>{head}</tr>{body}</table>'


def _card(kind: str, heading: str, *parts: str) -> str:
    return (
        f'<div style="{_CARD}"><div><strong>{kind}</strong> {heading}</div>{"".join(parts)}</div>'
    )


def execution(value: Execution) -> str:
    """An execution: template, status and progress, usage, cost, times and any error."""
    done, total = value.stages_done, value.stages_total
    progress = f'<progress value="{done}" max="{max(total, 1)}"></progress> {done}/{total} stages'
    rows = [
        ("template", f"{_text(value.template.display_name)} ({_code(value.template.name)})"),
        ("status", _status(value.status)),
        ("progress", progress),
        ("cost", _cost(value.cost)),
        ("usage", _usage(value.usage)),
        ("request", _code(value.request_id or "—")),
        ("created", _when(value.created_at)),
        ("started", _when(value.started_at)),
        ("finished", _when(value.finished_at)),
        ("duration", _duration(value.started_at, value.finished_at)),
        ("runs", str(value.runs)),
        ("parameters", _mapping(value.parameters)),
    ]
    if value.error:
        rows.append(("error", _pre(value.error)))
    return _card("Execution", _code(value.id), _table(rows))


def request(value: Request) -> str:
    """A request: its title, where it stands, its template, execution and description."""
    rows = [
        ("id", _code(value.id)),
        ("status", _status(value.status)),
        ("urgency", _text(value.urgency)),
        ("category", _text(value.category)),
        ("template", _code(value.template_name or "—")),
        ("execution", _code(value.execution_id or "—")),
        ("client", _code(value.client_id)),
        ("created", _when(value.created_at)),
        ("updated", _when(value.updated_at)),
        ("parameters", _mapping(value.parameters)),
    ]
    if value.description:
        rows.append(("description", _pre(value.description)))
    return _card("Request", _text(_cut(value.title, _TITLE)), _table(rows))


def stage_run(value: StageRun) -> str:
    """A stage run: worker, status, attempt, what it read and wrote, usage, cost, error."""
    rows = [
        ("status", _status(value.status)),
        ("worker", _code(value.worker)),
        ("attempt", str(value.attempt)),
        ("execution", _code(value.execution_id)),
        ("input", _ref(value.input_ref)),
        ("output", _ref(value.output_ref)),
        ("cost", _cost(value.cost)),
        ("usage", _usage(value.usage)),
        ("started", _when(value.started_at)),
        ("finished", _when(value.finished_at)),
        ("duration", _duration(value.started_at, value.finished_at)),
        ("summary", _mapping(value.summary)),
    ]
    if value.error:
        rows.append(("error", _pre(value.error)))
    return _card("StageRun", _code(value.stage_id), _table(rows))


def deliverable(value: Deliverable) -> str:
    """A deliverable: file name, type, size, where its bytes are, and its metadata."""
    rows = [
        ("id", _code(value.id)),
        ("type", _text(value.type)),
        ("media type", _text(value.media_type)),
        ("size", _size(value.size_bytes)),
        ("stored at", _code(value.ref.uri)),
        ("request", _code(value.request_id)),
        ("execution", _code(value.execution_id)),
        ("created", _when(value.created_at)),
        ("metadata", _mapping(value.metadata)),
    ]
    return _card("Deliverable", _text(_cut(value.filename, _TITLE)), _table(rows))


def event(value: ExecutionEvent) -> str:
    """An execution event: its place in the sequence, kind, stage, time and data."""
    rows = [
        ("execution", _code(value.execution_id)),
        ("stage", _code(value.stage_id) if value.stage_id else "—"),
        ("at", _when(value.at)),
        ("data", _mapping(value.data)),
    ]
    heading = f"#{value.seq} {_code(value.kind)}"
    return _card("ExecutionEvent", heading, _table(rows))


def template(value: Template) -> str:
    """A template: name, description, who may use it, its parameters and stages as tables."""
    rows = [
        ("description", _text(_cut(value.description, _LONG_TEXT))),
        ("category", _text(value.category)),
        ("tiers", ", ".join(_text(tier) for tier in value.tiers)),
        ("estimated cost", "$" + _text(value.estimated_cost_usd)),
        ("time limit", f"{value.max_execution_time_s} s"),
        ("partial results", "allowed" if value.allow_partial else "no"),
    ]
    stages = _grid(
        ("stage", "worker", "action", "after", "required", "deliverable", "condition"),
        (
            (
                _code(stage.id),
                _code(stage.worker),
                _text(stage.action),
                ", ".join(_code(dep) for dep in stage.depends_on) or "—",
                "yes" if stage.required else "no",
                "yes" if stage.deliverable else "no",
                _code(stage.condition) if stage.condition else "—",
            )
            for stage in value.stages
        ),
    )
    parts = [_table(rows), stages]
    if value.parameters:
        parts.append(
            _grid(
                ("parameter", "type", "default", "description"),
                (
                    (
                        _code(spec.name),
                        _text(spec.type),
                        "—" if spec.default is None else _code(bounded(spec.default, 80)),
                        _text(_cut(spec.description, _TITLE)),
                    )
                    for spec in value.parameters
                ),
            )
        )
    heading = f"{_text(value.display_name)} ({_code(value.name)})"
    return _card("Template", heading, *parts)
