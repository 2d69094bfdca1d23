"""Checking a pipeline template before it is saved: every problem, each with its path.

A template is refused with `TemplateError` (a `BadInputError`) whose `details["problems"]`
lists every problem found as `{"path": "stages[2].depends_on[0]", "message": ...}`, so that
an author fixes them all at once. The checks:

- its name (`[a-z][a-z0-9_]*`, at most 64 characters), display name, tiers, estimated cost
  (a decimal, not negative) and time limit;
- its stages form a DAG: unique ids, dependencies on stages that exist (not on themselves),
  no cycle;
- every worker exists and declares the stage's action (when the workers are known);
- input mappings name real sources: `params.NAME` a declared parameter, `request.FIELD` a
  field of a request, `STAGE.output[.PATH]` another stage;
- conditions parse and name declared parameters;
- the parameters: unique names, known types, sensible ranges, enum choices, tiers, a valid
  JSON Schema (`schema`) for objects and arrays, and defaults that satisfy all of it.

The same checks run when staff save a template and for `aifactory templates check FILE`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema

from .._exceptions import BadInputError
from ..models import ParameterSpec, StageSpec, Template, Tier
from ..orchestrator.planning import condition_parameter, input_sources, stage_dependencies
from .parameters import check_value

__all__ = ["REQUEST_FIELDS", "TemplateError", "check_template", "template_problems"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_STAGE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_TYPES = ("string", "integer", "number", "boolean", "enum", "object", "array")
#: The request fields an input mapping may read (`request.FIELD`).
REQUEST_FIELDS = frozenset({"title", "description", "category", "urgency"})

Problem = dict[str, str]


class TemplateError(BadInputError):
    """A template that cannot be saved; `details["problems"]` lists why, each with its path."""


def check_template(
    template: Template, workers: Mapping[str, frozenset[str] | None] | None = None
) -> Template:
    """`template`, if it passes every check (see the module); `workers` maps the known
    workers' names to their actions (`None`: any action), or is `None` when the workers are
    not known here. Raises `TemplateError` listing every problem."""
    problems = template_problems(template, workers)
    if problems:
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TemplateError(
            f"template {template.name!r} has {len(problems)} problem(s): {listed}{more}",
            details={"template": template.name, "problems": problems},
        )
    return template


def template_problems(
    template: Template, workers: Mapping[str, frozenset[str] | None] | None = None
) -> list[Problem]:
    """Every problem of `template` (see `check_template`), in the order of its fields."""
    problems: list[Problem] = []

    def add(path: str, message: str) -> None:
        problems.append({"path": path, "message": message})

    if not _NAME.fullmatch(template.name):
        add("name", "a name is a lower-case letter, then letters, digits or _ (64 at most)")
    if not template.display_name.strip():
        add("display_name", "is empty")
    if not template.tiers:
        add("tiers", "no tier may use the template")
    for i, tier in enumerate(template.tiers):
        if not isinstance(tier, Tier):
            add(f"tiers[{i}]", f"unknown tier {tier!r}")
    try:
        cost = Decimal(template.estimated_cost_usd)
        if not cost.is_finite() or cost < 0:
            add("estimated_cost_usd", "must be a finite amount, not negative")
    except (InvalidOperation, TypeError):
        add("estimated_cost_usd", f"{template.estimated_cost_usd!r} is not an amount")
    if template.max_execution_time_s <= 0:
        add("max_execution_time_s", "must be positive")
    params = _check_parameters(template.parameters, add)
    _check_stages(template, params, workers, add)
    return problems


def _check_parameters(specs: tuple[ParameterSpec, ...], add: Any) -> set[str]:
    names: set[str] = set()
    for i, spec in enumerate(specs):
        at = f"parameters[{i}]"
        if not _NAME.fullmatch(spec.name):
            add(f"{at}.name", f"{spec.name!r} is not a parameter name")
        if spec.name in names:
            add(f"{at}.name", f"{spec.name!r} is declared twice")
        names.add(spec.name)
        if spec.type not in _TYPES:
            add(f"{at}.type", f"unknown type {spec.type!r}; one of {', '.join(_TYPES)}")
            continue
        if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
            add(f"{at}.minimum", f"{spec.minimum:g} is above the maximum {spec.maximum:g}")
        if spec.type == "enum" and not spec.choices:
            add(f"{at}.choices", "an enum needs choices")
        if spec.max_length is not None and spec.max_length < 1:
            add(f"{at}.max_length", "must be at least 1")
        for field in ("visible_tiers", "editable_tiers"):
            for j, tier in enumerate(getattr(spec, field)):
                if not isinstance(tier, Tier):
                    add(f"{at}.{field}[{j}]", f"unknown tier {tier!r}")
        if not set(spec.editable_tiers) <= set(spec.visible_tiers):
            add(f"{at}.editable_tiers", "a tier may edit only what it sees")
        if spec.schema is not None:
            if spec.type not in ("object", "array"):
                add(f"{at}.schema", "only object and array parameters take a schema")
            else:
                try:
                    jsonschema.Draft202012Validator.check_schema(spec.schema)
                except jsonschema.SchemaError as exc:
                    add(f"{at}.schema", f"not a valid JSON Schema: {exc.message}")
                    continue
        if spec.default is not None:
            problem = check_value(spec, spec.default)
            if problem:
                add(f"{at}.default", f"the default {problem}")
        elif spec.required is False and spec.type == "enum" and spec.choices:
            pass
    return names


def _check_stages(
    template: Template,
    params: set[str],
    workers: Mapping[str, frozenset[str] | None] | None,
    add: Any,
) -> None:
    stages = template.stages
    if not stages:
        add("stages", "a template has at least one stage")
        return
    ids = [s.id for s in stages]
    known = set(ids)
    seen: set[str] = set()
    for i, stage in enumerate(stages):
        at = f"stages[{i}]"
        if not _STAGE_ID.fullmatch(stage.id):
            add(f"{at}.id", f"{stage.id!r} is not a stage id")
        if stage.id in seen:
            add(f"{at}.id", f"{stage.id!r} is used by another stage")
        seen.add(stage.id)
        _check_worker(stage, at, workers, add)
        for j, dep in enumerate(stage.depends_on):
            if dep == stage.id:
                add(f"{at}.depends_on[{j}]", "a stage cannot depend on itself")
            elif dep not in known:
                add(f"{at}.depends_on[{j}]", f"no stage {dep!r}")
        for name, expression in stage.input_mapping.items():
            sources = input_sources(expression)
            if not sources:
                add(f"{at}.input_mapping.{name}", "names no source")
            for source in sources:
                problem = _source_problem(source, stage.id, known, params)
                if problem:
                    add(f"{at}.input_mapping.{name}", problem)
        if stage.condition is not None:
            try:
                parameter = condition_parameter(stage.condition)
            except BadInputError as exc:
                add(f"{at}.condition", exc.message)
            else:
                if parameter not in params:
                    add(f"{at}.condition", f"no parameter {parameter!r} is declared")
        _check_policy(stage, at, add)
    cycle = _cycle(stages, known)
    if cycle:
        add("stages", f"the dependencies form a cycle: {' -> '.join(cycle)}")


def _check_worker(
    stage: StageSpec, at: str, workers: Mapping[str, frozenset[str] | None] | None, add: Any
) -> None:
    if workers is None:
        return
    if stage.worker not in workers:
        add(f"{at}.worker", f"no worker {stage.worker!r}; known: {', '.join(sorted(workers))}")
        return
    actions = workers[stage.worker]
    if actions is not None and stage.action not in actions:
        add(
            f"{at}.action",
            f"{stage.worker} has no action {stage.action!r}; it has {', '.join(sorted(actions))}",
        )


def _source_problem(source: str, stage_id: str, known: set[str], params: set[str]) -> str | None:
    head, _, rest = source.partition(".")
    if head == "params":
        if not rest:
            return "params names no parameter"
        name = rest.split(".", 1)[0]
        return None if name in params else f"{source!r}: no parameter {name!r} is declared"
    if head == "request":
        field = rest.split(".", 1)[0]
        if field not in REQUEST_FIELDS:
            return f"{source!r}: a request has no field {field!r}"
        return None
    if head == stage_id:
        return f"{source!r}: a stage cannot read its own output"
    if head in known:
        if rest == "output" or rest.startswith("output."):
            return None
        return f"{source!r}: a stage's source is STAGE.output or STAGE.output.PATH"
    return f"{source!r} is not params.NAME, request.FIELD or STAGE.output"


def _check_policy(stage: StageSpec, at: str, add: Any) -> None:
    policy = stage.policy
    if policy.maximum_attempts is not None and policy.maximum_attempts < 1:
        add(f"{at}.policy.maximum_attempts", "must be at least 1")
    for field in (
        "initial_interval_s",
        "maximum_interval_s",
        "schedule_to_start_s",
        "start_to_close_s",
        "heartbeat_s",
    ):
        value = getattr(policy, field)
        if value is not None and not value > 0:
            add(f"{at}.policy.{field}", "must be positive")
    if policy.backoff_coefficient is not None and not policy.backoff_coefficient >= 1:
        add(f"{at}.policy.backoff_coefficient", "must be at least 1")


def _cycle(stages: tuple[StageSpec, ...], known: set[str]) -> list[str]:
    """One dependency cycle among `stages` (its ids, the first repeated at the end), if any."""
    deps = {s.id: sorted(stage_dependencies(s, known) - {s.id}) for s in stages}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for stage in stages:
        if stage.id not in state:
            found = visit(stage.id)
            if found:
                return found
    return []
