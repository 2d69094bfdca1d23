"""Planning: pure decisions about a pipeline, no I/O.

Which stages a template has and in what order they may run, which are ready now, how a
stage's parameters merge, what its inputs bind to, whether its condition holds, and what a
stage's idempotency key is. The runner carries these decisions out.

Input mapping syntax (`StageSpec.input_mapping` values): one or more sources separated by
`|`, the first available one wins:
- `params.NAME` — a merged request parameter (skipped if missing or null);
- `request.FIELD` — a field of the execution context's request (title, description, ...);
- `STAGE.output` or `STAGE.output.PATH` — (part of) an earlier stage's output, by reference.

Condition syntax (`StageSpec.condition`): `params.NAME`, `not params.NAME`,
`params.NAME == LITERAL` or `params.NAME != LITERAL`, where LITERAL is JSON (`true`, `3`,
`"text"`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from .._exceptions import BadInputError
from ..models.enums import StageStatus
from ..models.storage_ref import StorageRef
from ..models.work import StageSpec, Template
from ..protocol.messages import Binding

__all__ = [
    "TemplatePlan",
    "bind_inputs",
    "blocked_stages",
    "condition_parameter",
    "deliverable_stages",
    "dependency_map",
    "evaluate_condition",
    "frontier",
    "idempotency_key",
    "input_sources",
    "merge_parameters",
    "ready_stages",
    "result_cache_key",
    "stage_dependencies",
    "topological_order",
    "validate_template",
]

_MISSING = object()


def _sources(expression: str) -> list[str]:
    return [part.strip() for part in expression.split("|") if part.strip()]


def input_sources(expression: str) -> list[str]:
    """The sources of an input mapping value, in the order they are tried."""
    return _sources(expression)


def condition_parameter(condition: str) -> str:
    """The parameter a condition tests. Raises `BadInputError` for a malformed condition."""
    return _parse_condition(condition)[1]


def stage_dependencies(stage: StageSpec, stage_ids: frozenset[str] | set[str]) -> set[str]:
    """The stages `stage` waits for: its `depends_on` plus every stage its inputs read."""
    deps = set(stage.depends_on)
    for expression in stage.input_mapping.values():
        for source in _sources(expression):
            head = source.split(".", 1)[0]
            if head in stage_ids:
                deps.add(head)
    return deps


def validate_template(template: Template) -> None:
    """Check that a template's stages form a valid DAG with resolvable inputs.

    Raises `BadInputError` for duplicate or unknown stage ids, self-dependencies, cycles,
    malformed input sources or conditions.
    """
    ids = [s.id for s in template.stages]
    if not ids:
        raise BadInputError(f"template {template.name} has no stages")
    if len(set(ids)) != len(ids):
        raise BadInputError(f"template {template.name} repeats a stage id", details={"stages": ids})
    known = set(ids)
    for stage in template.stages:
        for dep in stage.depends_on:
            if dep not in known or dep == stage.id:
                raise BadInputError(
                    f"stage {stage.id} depends on unknown stage {dep!r}",
                    details={"stage": stage.id, "depends_on": dep},
                )
        for name, expression in stage.input_mapping.items():
            sources = _sources(expression)
            if not sources:
                raise BadInputError(f"stage {stage.id} input {name!r} has no source")
            for source in sources:
                head, _, rest = source.partition(".")
                valid = (head in ("params", "request") and rest) or (
                    head in known
                    and head != stage.id
                    and (rest == "output" or rest.startswith("output."))
                )
                if not valid:
                    raise BadInputError(
                        f"stage {stage.id} input {name!r} has an invalid source {source!r}",
                        details={"stage": stage.id, "input": name, "source": source},
                    )
        if stage.condition is not None:
            _parse_condition(stage.condition)
    topological_order(template)


def topological_order(template: Template) -> list[StageSpec]:
    """The stages in an order that respects every dependency (template order breaks ties).

    Raises `BadInputError` if the dependencies form a cycle.
    """
    ids = {s.id for s in template.stages}
    deps = {s.id: stage_dependencies(s, ids) for s in template.stages}
    done: set[str] = set()
    order: list[StageSpec] = []
    while len(order) < len(template.stages):
        ready = [s for s in template.stages if s.id not in done and deps[s.id] <= done]
        if not ready:
            cycle = sorted(ids - done)
            raise BadInputError(
                f"template {template.name} has a dependency cycle among {cycle}",
                details={"stages": cycle},
            )
        order.append(ready[0])
        done.add(ready[0].id)
    return order


def deliverable_stages(template: Template) -> list[StageSpec]:
    """The stages whose outputs are the execution's deliverables: those marked
    `deliverable`, or else every stage no other stage depends on."""
    chosen = [s for s in template.stages if s.deliverable]
    if chosen:
        return chosen
    ids = {s.id for s in template.stages}
    used = set().union(*(stage_dependencies(s, ids) for s in template.stages))
    return [s for s in template.stages if s.id not in used]


@attrs.frozen
class TemplatePlan:
    """What the runner needs to know about a validated template, worked out once."""

    template: Template
    deps: dict[str, frozenset[str]]
    deliverables: tuple[StageSpec, ...]

    @classmethod
    def of(cls, template: Template, *, validate: bool = True) -> TemplatePlan:
        """Plan `template`, validating it first unless told it was validated before (a
        stored execution's). Raises `BadInputError` like `validate_template`."""
        if validate:
            validate_template(template)
        return cls(template, dependency_map(template), tuple(deliverable_stages(template)))


def dependency_map(template: Template) -> dict[str, frozenset[str]]:
    """Each stage's dependencies (`stage_dependencies`), worked out once for a template."""
    ids = {s.id for s in template.stages}
    return {s.id: frozenset(stage_dependencies(s, ids)) for s in template.stages}


def ready_stages(
    template: Template,
    statuses: Mapping[str, StageStatus],
    deps: Mapping[str, frozenset[str]] | None = None,
) -> list[StageSpec]:
    """Pending stages whose dependencies all succeeded, in template order.

    `deps` is the template's `dependency_map`, when the caller keeps it at hand.
    """
    deps = dependency_map(template) if deps is None else deps
    return [
        s
        for s in template.stages
        if statuses.get(s.id, StageStatus.PENDING) is StageStatus.PENDING
        and all(statuses.get(d) is StageStatus.SUCCEEDED for d in deps[s.id])
    ]


def blocked_stages(
    template: Template,
    statuses: Mapping[str, StageStatus],
    deps: Mapping[str, frozenset[str]] | None = None,
) -> list[StageSpec]:
    """Pending stages that can never run: a dependency failed or was skipped."""
    deps = dependency_map(template) if deps is None else deps
    dead = (StageStatus.FAILED, StageStatus.SKIPPED)
    return [
        s
        for s in template.stages
        if statuses.get(s.id, StageStatus.PENDING) is StageStatus.PENDING
        and any(statuses.get(d) in dead for d in deps[s.id])
    ]


def frontier(
    template: Template,
    statuses: Mapping[str, StageStatus],
    deps: Mapping[str, frozenset[str]] | None = None,
) -> tuple[list[StageSpec], list[StageSpec]]:
    """`ready_stages` and `blocked_stages` at once, in one pass over the template."""
    deps = dependency_map(template) if deps is None else deps
    ready: list[StageSpec] = []
    blocked: list[StageSpec] = []
    for stage in template.stages:
        if statuses.get(stage.id, StageStatus.PENDING) is not StageStatus.PENDING:
            continue
        needed = [statuses.get(d) for d in deps[stage.id]]
        if any(s is StageStatus.FAILED or s is StageStatus.SKIPPED for s in needed):
            blocked.append(stage)
        elif all(s is StageStatus.SUCCEEDED for s in needed):
            ready.append(stage)
    return ready, blocked


def merge_parameters(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge parameter layers, later ones winning (worker defaults < request < stage overrides).

    A `None` value in a later layer does not erase an earlier value.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    return merged


def bind_inputs(
    stage: StageSpec,
    outputs: Mapping[str, StorageRef],
    parameters: Mapping[str, Any],
    context: Mapping[str, Any],
) -> dict[str, Binding]:
    """Resolve a stage's input mapping into bindings (literal values or output references).

    Inputs with no available source are left out; the worker decides whether it needs them.
    """
    bindings: dict[str, Binding] = {}
    for name, expression in stage.input_mapping.items():
        for source in _sources(expression):
            head, _, rest = source.partition(".")
            if head == "params":
                value = parameters.get(rest)
            elif head == "request":
                value = _lookup(context.get("request", {}), rest)
            else:
                ref = outputs.get(head)
                if ref is None:
                    continue
                bindings[name] = Binding(ref=ref, path=rest.removeprefix("output").lstrip("."))
                break
            if value is not None and value is not _MISSING:
                bindings[name] = Binding(value=value)
                break
    return bindings


def _lookup(document: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(document, Mapping) or step not in document:
            return _MISSING
        document = document[step]
    return document


def _parse_condition(condition: str) -> tuple[bool, str, str | None, Any]:
    """(negate, param name, operator or None, literal)."""
    text = condition.strip()
    negate = text.startswith("not ")
    if negate:
        text = text[4:].strip()
    # The operator is whichever comes first: a literal may itself contain `==`.
    op = min(((text.find(o), o) for o in ("==", "!=") if o in text), default=(0, None))[1]
    left, literal_text = text.split(op, 1) if op else (text, "")
    left = left.strip()
    if not left.startswith("params.") or len(left) <= len("params."):
        raise BadInputError(f"condition must test params.NAME: {condition!r}")
    literal: Any = None
    if op:
        try:
            literal = json.loads(literal_text.strip())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"condition literal is not JSON: {condition!r}") from exc
    return negate, left.removeprefix("params."), op, literal


def evaluate_condition(condition: str | None, parameters: Mapping[str, Any]) -> bool:
    """Whether a stage with `condition` should run (no condition: always).

    Raises `BadInputError` for a malformed condition.
    """
    if condition is None:
        return True
    negate, name, op, literal = _parse_condition(condition)
    value = parameters.get(name)
    if op == "==":
        result = value == literal
    elif op == "!=":
        result = value != literal
    else:
        result = bool(value)
    return not result if negate else result


def idempotency_key(execution_id: str, stage_id: str, input_sha256: str) -> str:
    """A key that is the same for every attempt of a stage with the same input."""
    text = f"{execution_id}\x00{stage_id}\x00{input_sha256}"
    return "idem_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def result_cache_key(
    worker: str,
    version: str,
    action: str,
    parameters: Mapping[str, Any],
    bindings: Mapping[str, Binding],
) -> str:
    """The result-cache key of a stage: worker, its version, action, parameters and the
    *content* of its inputs (digests of referenced outputs, not their storage keys, so equal
    inputs from different executions share a key)."""
    inputs = {
        name: {"sha256": b.ref.sha256, "path": b.path} if b.ref is not None else {"value": b.value}
        for name, b in sorted(bindings.items())
    }
    document = {
        "worker": worker,
        "version": version,
        "action": action,
        "parameters": parameters,
        "inputs": inputs,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return "rc_" + hashlib.sha256(text.encode()).hexdigest()
