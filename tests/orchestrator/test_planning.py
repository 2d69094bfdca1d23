"""Planning: template validation, ordering, readiness, parameters, bindings, conditions, keys."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aifactory._exceptions import BadInputError
from aifactory.models import StageSpec, StageStatus, StorageRef, Template, Tier
from aifactory.orchestrator.planning import (
    bind_inputs,
    blocked_stages,
    evaluate_condition,
    idempotency_key,
    merge_parameters,
    ready_stages,
    result_cache_key,
    stage_dependencies,
    topological_order,
    validate_template,
)
from aifactory.protocol.messages import Binding


def template(*stages: StageSpec, name: str = "t") -> Template:
    return Template(name, "T", "a test template", "test", tuple(Tier), tuple(stages))


def stage(sid: str, *depends_on: str, **kwargs: Any) -> StageSpec:
    return StageSpec(sid, kwargs.pop("worker", "test_worker"), depends_on=depends_on, **kwargs)


def reads(sid: str, **mapping: str) -> StageSpec:
    return StageSpec(sid, "test_worker", input_mapping=mapping)


# -- random DAGs -----------------------------------------------------------------------------


@st.composite
def dags(
    draw: st.DrawFn, min_size: int = 1, max_size: int = 10
) -> tuple[Template, dict[str, set[str]]]:
    """A valid template over a random DAG, stages listed in shuffled order.

    Each stage depends on a random subset of the stages generated before it, through
    `depends_on` or through an input mapping (an output, a path into it, or an alternative
    after a parameter). Returns the template and each stage's direct dependencies.
    """
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    names = [f"s{i}" for i in range(n)]
    deps: dict[str, set[str]] = {}
    stages = []
    for i, sid in enumerate(names):
        chosen = draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        depends_on: list[str] = []
        mapping: dict[str, str] = {}
        for j, dep in enumerate(chosen):
            how = draw(st.sampled_from(["depends_on", "output", "path", "alternative"]))
            if how == "depends_on":
                depends_on.append(dep)
            elif how == "output":
                mapping[f"in{j}"] = f"{dep}.output"
            elif how == "path":
                mapping[f"in{j}"] = f"{dep}.output.items.0"
            else:
                mapping[f"in{j}"] = f"params.topic | {dep}.output | request.title"
        if draw(st.booleans()):
            mapping["topic"] = "params.topic|request.title"
        stages.append(
            StageSpec(sid, "test_worker", depends_on=tuple(depends_on), input_mapping=mapping)
        )
        deps[sid] = set(chosen)
    shuffled = draw(st.permutations(stages))
    return template(*shuffled), deps


def _closure(deps: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Every stage's transitive dependencies."""
    result: dict[str, set[str]] = {}

    def visit(sid: str) -> set[str]:
        if sid not in result:
            found: set[str] = set()
            for dep in deps[sid]:
                found |= {dep} | visit(dep)
            result[sid] = found
        return result[sid]

    for sid in deps:
        visit(sid)
    return result


# -- validate_template -----------------------------------------------------------------------


def test_a_valid_template_passes() -> None:
    validate_template(
        template(
            reads("outline", topic="params.topic|request.title", text="request.description"),
            reads("report", structure="outline.output", keywords="outline.output.keywords"),
            stage("publish", "report", condition="params.publish"),
        )
    )


def test_stages_may_be_listed_before_the_stages_they_depend_on() -> None:
    validate_template(template(stage("b", "a"), reads("c", x="b.output.x"), stage("a")))


def test_a_template_without_stages_is_refused() -> None:
    with pytest.raises(BadInputError, match="no stages"):
        validate_template(template())


def test_duplicate_stage_ids_are_refused() -> None:
    with pytest.raises(BadInputError, match="repeats a stage id") as info:
        validate_template(template(stage("a"), stage("b"), stage("a")))
    assert info.value.details["stages"] == ["a", "b", "a"]


def test_an_unknown_dependency_is_refused() -> None:
    with pytest.raises(BadInputError, match="unknown stage 'ghost'") as info:
        validate_template(template(stage("a"), stage("b", "ghost")))
    assert info.value.details == {"stage": "b", "depends_on": "ghost"}


def test_a_stage_depending_on_itself_is_refused() -> None:
    with pytest.raises(BadInputError):
        validate_template(template(stage("a"), stage("b", "b")))


def test_a_stage_reading_its_own_output_is_refused() -> None:
    with pytest.raises(BadInputError, match="invalid source"):
        validate_template(template(stage("a"), reads("b", x="params.x|b.output")))


@pytest.mark.parametrize(
    "stages",
    [
        (stage("a", "b"), stage("b", "a")),
        (reads("a", x="b.output"), reads("b", y="a.output")),
        (stage("a", "c"), reads("b", x="a.output.k"), stage("c", "b")),
        (reads("a", x="params.x | c.output"), stage("b", "a"), stage("c", "b"), stage("d")),
    ],
    ids=["depends_on", "input_mapping", "mixed-3-cycle", "through-an-alternative"],
)
def test_cycles_are_refused(stages: tuple[StageSpec, ...]) -> None:
    with pytest.raises(BadInputError, match="cycle") as info:
        validate_template(template(*stages))
    assert set(info.value.details["stages"]) >= {"a", "b"}


@pytest.mark.parametrize(
    "source",
    [
        "params",
        "params.",
        "request",
        "request.",
        "ghost.output",
        "a.result",
        "a",
        "a.",
        "output",
        "kv://stages/a",
        "params.x | nowhere.output",
    ],
)
def test_invalid_input_sources_are_refused(source: str) -> None:
    with pytest.raises(BadInputError) as info:
        validate_template(template(stage("a"), reads("b", x=source)))
    assert info.value.details["stage"] == "b"
    assert info.value.details["input"] == "x"


@pytest.mark.parametrize("expression", ["", "   ", "|", " | "])
def test_an_input_without_any_source_is_refused(expression: str) -> None:
    with pytest.raises(BadInputError, match="no source"):
        validate_template(template(reads("a", x=expression)))


@pytest.mark.parametrize(
    "condition",
    [
        "",
        "publish",
        "params.",
        "not params.",
        "request.title == 1",
        "params.x == ",
        "params.x == nope",
        "params.x != {",
        "a.output",
    ],
)
def test_malformed_conditions_are_refused(condition: str) -> None:
    with pytest.raises(BadInputError, match="condition"):
        validate_template(template(stage("a", condition=condition)))


@given(dags())
@settings(max_examples=100, deadline=None)
def test_random_dags_are_valid(case: tuple[Template, dict[str, set[str]]]) -> None:
    validate_template(case[0])


@given(dags(min_size=2), st.data())
@settings(max_examples=100, deadline=None)
def test_adding_a_back_edge_makes_a_cycle(
    case: tuple[Template, dict[str, set[str]]], data: st.DataObject
) -> None:
    tpl, deps = case
    closure = _closure(deps)
    pairs = sorted((a, b) for a in closure for b in closure[a])  # a (transitively) needs b
    assume(pairs)
    later, earlier = data.draw(st.sampled_from(pairs))
    how = data.draw(st.sampled_from(["depends_on", "output", "alternative"]))
    changed = []
    for s in tpl.stages:
        if s.id == earlier:
            if how == "depends_on":
                s = StageSpec(
                    s.id, s.worker, depends_on=(*s.depends_on, later), input_mapping=s.input_mapping
                )
            elif how == "output":
                s = StageSpec(
                    s.id,
                    s.worker,
                    depends_on=s.depends_on,
                    input_mapping={**s.input_mapping, "back": f"{later}.output"},
                )
            else:
                s = StageSpec(
                    s.id,
                    s.worker,
                    depends_on=s.depends_on,
                    input_mapping={**s.input_mapping, "back": f"params.p|{later}.output.k"},
                )
        changed.append(s)
    cyclic = template(*changed)
    with pytest.raises(BadInputError, match="cycle"):
        validate_template(cyclic)
    with pytest.raises(BadInputError, match="cycle"):
        topological_order(cyclic)


# -- stage_dependencies and topological_order ------------------------------------------------


def test_stage_dependencies_combine_depends_on_and_inputs() -> None:
    s = StageSpec(
        "c",
        "w",
        depends_on=("a",),
        input_mapping={"x": "b.output.k", "y": "params.b|request.title", "z": "params.q|d.output"},
    )
    assert stage_dependencies(s, {"a", "b", "c", "d"}) == {"a", "b", "d"}
    # `params` and `request` are not stages, even if a stage had such a name in another template.
    assert stage_dependencies(s, {"a"}) == {"a"}


@given(dags())
@settings(max_examples=150, deadline=None)
def test_topological_order_respects_every_dependency(
    case: tuple[Template, dict[str, set[str]]],
) -> None:
    tpl, deps = case
    order = topological_order(tpl)
    ids = [s.id for s in order]
    assert sorted(ids) == sorted(deps)  # every stage exactly once
    assert len(ids) == len(set(ids))
    position = {sid: i for i, sid in enumerate(ids)}
    for sid, needs in deps.items():
        for dep in needs:
            assert position[dep] < position[sid], f"{sid} ran before its dependency {dep}"
    # The very stage objects of the template, not copies.
    assert all(any(s is t for t in tpl.stages) for s in order)


@given(dags())
@settings(max_examples=50, deadline=None)
def test_an_already_ordered_template_keeps_its_order(
    case: tuple[Template, dict[str, set[str]]],
) -> None:
    tpl, _ = case
    ordered = template(*topological_order(tpl))
    assert [s.id for s in topological_order(ordered)] == [s.id for s in ordered.stages]


def test_template_order_breaks_ties() -> None:
    tpl = template(stage("c"), stage("a"), stage("b", "c"), stage("d"))
    assert [s.id for s in topological_order(tpl)] == ["c", "a", "b", "d"]
    tpl = template(stage("b", "a"), stage("c"), stage("a"))
    assert [s.id for s in topological_order(tpl)] == ["c", "a", "b"]


# -- ready_stages and blocked_stages ---------------------------------------------------------

statuses_strategy = st.sampled_from(StageStatus)


def test_ready_stages_at_the_start_are_those_without_dependencies() -> None:
    tpl = template(stage("b", "a"), stage("a"), reads("c", x="a.output"), stage("d"))
    assert [s.id for s in ready_stages(tpl, {})] == ["a", "d"]


def test_a_stage_becomes_ready_when_all_its_dependencies_succeeded() -> None:
    tpl = template(stage("a"), stage("b"), reads("c", x="a.output", y="b.output.k"))
    ok, run = StageStatus.SUCCEEDED, StageStatus.RUNNING
    assert [s.id for s in ready_stages(tpl, {"a": ok, "b": run})] == []
    assert [s.id for s in ready_stages(tpl, {"a": ok, "b": ok})] == ["c"]


@pytest.mark.parametrize(
    "status", [StageStatus.RUNNING, StageStatus.SUCCEEDED, StageStatus.FAILED, StageStatus.SKIPPED]
)
def test_only_pending_stages_are_ready(status: StageStatus) -> None:
    tpl = template(stage("a"), stage("b"))
    assert [s.id for s in ready_stages(tpl, {"a": status})] == ["b"]


@pytest.mark.parametrize("dead", [StageStatus.FAILED, StageStatus.SKIPPED])
def test_a_stage_is_blocked_when_a_dependency_failed_or_was_skipped(dead: StageStatus) -> None:
    tpl = template(stage("a"), stage("b"), stage("c", "a", "b"), reads("d", x="a.output"))
    statuses = {"a": dead, "b": StageStatus.SUCCEEDED}
    assert [s.id for s in blocked_stages(tpl, statuses)] == ["c", "d"]
    assert ready_stages(tpl, statuses) == []


def test_blocked_stages_reports_direct_dependents_only() -> None:
    # c waits on b, which waits on the failed a: b is blocked now, c once b is marked skipped.
    tpl = template(stage("a"), stage("b", "a"), stage("c", "b"))
    statuses = {"a": StageStatus.FAILED}
    assert [s.id for s in blocked_stages(tpl, statuses)] == ["b"]
    statuses["b"] = StageStatus.SKIPPED
    assert [s.id for s in blocked_stages(tpl, statuses)] == ["c"]


def test_a_stage_that_already_ran_is_never_blocked() -> None:
    tpl = template(stage("a"), stage("b", "a"))
    statuses = {"a": StageStatus.FAILED, "b": StageStatus.SUCCEEDED}
    assert blocked_stages(tpl, statuses) == []


@given(dags(), st.data())
@settings(max_examples=100, deadline=None)
def test_ready_and_blocked_follow_their_definitions(
    case: tuple[Template, dict[str, set[str]]], data: st.DataObject
) -> None:
    tpl, deps = case
    statuses = data.draw(st.dictionaries(st.sampled_from(sorted(deps)), statuses_strategy))
    ready = ready_stages(tpl, statuses)
    blocked = blocked_stages(tpl, statuses)

    def pending(sid: str) -> bool:
        return statuses.get(sid, StageStatus.PENDING) is StageStatus.PENDING

    expected_ready = [
        s.id
        for s in tpl.stages
        if pending(s.id) and all(statuses.get(d) is StageStatus.SUCCEEDED for d in deps[s.id])
    ]
    expected_blocked = [
        s.id
        for s in tpl.stages
        if pending(s.id)
        and any(statuses.get(d) in (StageStatus.FAILED, StageStatus.SKIPPED) for d in deps[s.id])
    ]
    assert [s.id for s in ready] == expected_ready  # in template order
    assert [s.id for s in blocked] == expected_blocked
    assert not {s.id for s in ready} & {s.id for s in blocked}


@given(dags())
@settings(max_examples=50, deadline=None)
def test_running_every_ready_stage_to_success_runs_everything_once(
    case: tuple[Template, dict[str, set[str]]],
) -> None:
    tpl, deps = case
    statuses: dict[str, StageStatus] = {}
    rounds = 0
    while ready := ready_stages(tpl, statuses):
        for s in ready:
            assert statuses.get(s.id) is None
            assert all(statuses.get(d) is StageStatus.SUCCEEDED for d in deps[s.id])
            statuses[s.id] = StageStatus.SUCCEEDED
        rounds += 1
        assert rounds <= len(deps)
    assert set(statuses) == set(deps)


@given(dags(), st.data())
@settings(max_examples=100, deadline=None)
def test_driving_a_pipeline_to_the_end_leaves_no_stage_pending(
    case: tuple[Template, dict[str, set[str]]], data: st.DataObject
) -> None:
    """A runner's loop: skip the blocked, run the ready (each succeeds or fails), repeat."""
    tpl, deps = case
    statuses: dict[str, StageStatus] = {}
    for _ in range(2 * len(deps) + 1):
        blocked = blocked_stages(tpl, statuses)
        for s in blocked:
            statuses[s.id] = StageStatus.SKIPPED
        ready = ready_stages(tpl, statuses)
        if not ready and not blocked:
            break
        for s in ready:
            statuses[s.id] = data.draw(
                st.sampled_from([StageStatus.SUCCEEDED, StageStatus.FAILED]), label=s.id
            )
    assert set(statuses) == set(deps), "a stage was left pending"
    for sid, status in statuses.items():
        ran = status is not StageStatus.SKIPPED
        assert ran == all(statuses[d] is StageStatus.SUCCEEDED for d in deps[sid])


# -- merge_parameters ------------------------------------------------------------------------

param_values = st.none() | st.integers() | st.text(max_size=5) | st.booleans()
layers_strategy = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), param_values, max_size=6), max_size=5
)


@given(layers_strategy)
@settings(max_examples=200)
def test_later_layers_win_and_none_never_erases(layers: list[dict[str, Any]]) -> None:
    snapshot = [dict(layer) for layer in layers]
    merged = merge_parameters(*layers)
    assert layers == snapshot  # inputs untouched
    for key in "abcdef":
        set_values = [layer[key] for layer in layers if layer.get(key) is not None]
        if set_values:
            assert merged[key] == set_values[-1]
        else:
            assert key not in merged
    assert None not in merged.values()


def test_merge_parameters_examples() -> None:
    defaults = {"format": "markdown", "depth": 2, "audience": "general"}
    request = {"depth": 4, "audience": None, "topic": "AI"}
    overrides = {"format": "html", "flag": False, "count": 0}
    assert merge_parameters(defaults, request, overrides) == {
        "format": "html",
        "depth": 4,
        "audience": "general",
        "topic": "AI",
        "flag": False,  # falsy values are values, not absences
        "count": 0,
    }
    assert merge_parameters() == {}


# -- bind_inputs -----------------------------------------------------------------------------

OUTLINE = StorageRef.parse("kv://stages/e1/outline/output.json", size=10, sha256="a" * 64)
RESEARCH = StorageRef.inline(b'{"keywords": ["ai"]}', "application/json")


def test_bind_a_parameter_as_a_literal() -> None:
    s = reads("r", topic="params.topic")
    assert bind_inputs(s, {}, {"topic": "AI tools"}, {}) == {"topic": Binding(value="AI tools")}


def test_bind_a_request_field_when_the_parameter_is_missing_or_null() -> None:
    s = reads("r", topic="params.topic|request.title")
    context = {"request": {"title": "Market analysis", "description": "d"}}
    expected = {"topic": Binding(value="Market analysis")}
    assert bind_inputs(s, {}, {}, context) == expected
    assert bind_inputs(s, {}, {"topic": None}, context) == expected
    assert bind_inputs(s, {}, {"topic": "set"}, context) == {"topic": Binding(value="set")}


def test_falsy_values_are_available() -> None:
    s = reads("r", flag="params.flag|request.flag", n="params.n|request.n")
    bound = bind_inputs(s, {}, {"flag": False, "n": 0}, {"request": {"flag": True, "n": 9}})
    assert bound == {"flag": Binding(value=False), "n": Binding(value=0)}


def test_bind_a_nested_request_field() -> None:
    s = reads("r", lang="request.meta.lang", missing="request.meta.nope", deep="request.title.x")
    bound = bind_inputs(s, {}, {}, {"request": {"meta": {"lang": "en"}, "title": "t"}})
    assert bound == {"lang": Binding(value="en")}


def test_bind_an_earlier_output_by_reference() -> None:
    s = reads(
        "report",
        structure="outline.output",
        keywords="research.output.keywords",
        first="research.output.items.0.title",
    )
    bound = bind_inputs(s, {"outline": OUTLINE, "research": RESEARCH}, {}, {})
    assert bound == {
        "structure": Binding(ref=OUTLINE, path=""),
        "keywords": Binding(ref=RESEARCH, path="keywords"),
        "first": Binding(ref=RESEARCH, path="items.0.title"),
    }


def test_the_first_available_alternative_wins() -> None:
    s = reads("r", x="outline.output | params.x | request.title")
    context = {"request": {"title": "T"}}
    assert bind_inputs(s, {"outline": OUTLINE}, {"x": 1}, context) == {"x": Binding(ref=OUTLINE)}
    assert bind_inputs(s, {}, {"x": 1}, context) == {"x": Binding(value=1)}
    assert bind_inputs(s, {}, {}, context) == {"x": Binding(value="T")}


def test_inputs_without_any_available_source_are_left_out() -> None:
    s = reads("r", a="params.a|request.a", b="outline.output", c="params.c")
    assert bind_inputs(s, {}, {"c": "here"}, {"request": {"a": None}}) == {
        "c": Binding(value="here")
    }
    assert bind_inputs(s, {}, {}, {}) == {}


SOURCES = ["params.a", "params.b", "request.title", "request.meta.x", "s1.output", "s2.output.k"]


@given(
    alternatives=st.lists(st.sampled_from(SOURCES), min_size=1, max_size=5),
    params=st.fixed_dictionaries({}, optional={"a": param_values, "b": param_values}),
    request=st.fixed_dictionaries(
        {},
        optional={
            "title": param_values,
            "meta": st.fixed_dictionaries({}, optional={"x": param_values}),
        },
    ),
    produced=st.sets(st.sampled_from(["s1", "s2"])),
)
@settings(max_examples=200)
def test_bind_inputs_takes_the_first_available_source(
    alternatives: list[str],
    params: dict[str, Any],
    request: dict[str, Any],
    produced: set[str],
) -> None:
    refs = {"s1": OUTLINE, "s2": RESEARCH}
    outputs = {name: refs[name] for name in produced}
    available: dict[str, Binding] = {}
    if params.get("a") is not None:
        available["params.a"] = Binding(value=params["a"])
    if params.get("b") is not None:
        available["params.b"] = Binding(value=params["b"])
    if request.get("title") is not None:
        available["request.title"] = Binding(value=request["title"])
    if request.get("meta", {}).get("x") is not None:
        available["request.meta.x"] = Binding(value=request["meta"]["x"])
    if "s1" in produced:
        available["s1.output"] = Binding(ref=OUTLINE, path="")
    if "s2" in produced:
        available["s2.output.k"] = Binding(ref=RESEARCH, path="k")

    s = reads("r", x=" | ".join(alternatives))
    bound = bind_inputs(s, outputs, params, {"request": request})
    first = next((available[src] for src in alternatives if src in available), None)
    assert bound == ({} if first is None else {"x": first})


# -- evaluate_condition ----------------------------------------------------------------------


def test_no_condition_always_runs() -> None:
    assert evaluate_condition(None, {}) is True


@pytest.mark.parametrize(
    ("condition", "params", "expected"),
    [
        ("params.publish", {"publish": True}, True),
        ("params.publish", {"publish": False}, False),
        ("params.publish", {}, False),
        ("params.publish", {"publish": "yes"}, True),
        ("params.publish", {"publish": ""}, False),
        ("params.publish", {"publish": 0}, False),
        ("not params.publish", {"publish": True}, False),
        ("not params.publish", {}, True),
        ('params.depth == "detailed"', {"depth": "detailed"}, True),
        ('params.depth == "detailed"', {"depth": "overview"}, False),
        ('params.depth != "detailed"', {"depth": "overview"}, True),
        ('params.depth != "detailed"', {"depth": "detailed"}, False),
        ("params.n == 3", {"n": 3}, True),
        ("params.n == 3", {"n": "3"}, False),
        ("params.n==3", {"n": 3}, True),
        ("  params.flag == true  ", {"flag": True}, True),
        ("params.flag == true", {"flag": 1}, True),  # Python equality: 1 == True
        ("params.missing == null", {}, True),
        ("params.missing != null", {}, False),
        ("not params.n == 3", {"n": 3}, False),
        ("not params.n != 3", {"n": 3}, True),
        ('params.tags == ["a", "b"]', {"tags": ["a", "b"]}, True),
        ('params.text == "a!=b"', {"text": "a!=b"}, True),
    ],
)
def test_evaluate_condition(condition: str, params: dict[str, Any], expected: bool) -> None:
    assert evaluate_condition(condition, params) is expected


def test_a_not_equal_literal_may_contain_an_equality_sign() -> None:
    assert evaluate_condition('params.text != "a==b"', {"text": "x"}) is True
    assert evaluate_condition('params.text != "a==b"', {"text": "a==b"}) is False


@pytest.mark.parametrize(
    "condition", ["", "x", "params.", "params.x == ", "params.x == yes", "not", "request.x"]
)
def test_a_malformed_condition_is_bad_input(condition: str) -> None:
    with pytest.raises(BadInputError):
        evaluate_condition(condition, {"x": 1})


json_literals = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet=string.ascii_letters + string.digits + " _-.", max_size=8)
)


@given(literal=json_literals, value=json_literals, negate=st.booleans())
@settings(max_examples=200)
def test_equality_conditions_compare_with_the_json_literal(
    literal: Any, value: Any, negate: bool
) -> None:
    prefix = "not " if negate else ""
    params = {"p": value}
    equal = evaluate_condition(f"{prefix}params.p == {json.dumps(literal)}", params)
    unequal = evaluate_condition(f"{prefix}params.p != {json.dumps(literal)}", params)
    assert equal is ((value == literal) != negate)
    assert unequal is ((value != literal) != negate)


@given(value=json_literals)
@settings(max_examples=100)
def test_truthy_conditions_follow_truthiness(value: Any) -> None:
    assert evaluate_condition("params.p", {"p": value}) is bool(value)
    assert evaluate_condition("not params.p", {"p": value}) is (not value)


# -- idempotency_key -------------------------------------------------------------------------

id_texts = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
digests = st.binary(max_size=16).map(lambda b: hashlib.sha256(b).hexdigest())


@given(id_texts, id_texts, digests)
@settings(max_examples=100)
def test_idempotency_key_is_stable(execution_id: str, stage_id: str, digest: str) -> None:
    key = idempotency_key(execution_id, stage_id, digest)
    assert key == idempotency_key(execution_id, stage_id, digest)
    assert key.startswith("idem_")
    assert len(key) == len("idem_") + 32
    assert set(key.removeprefix("idem_")) <= set("0123456789abcdef")


@given(
    st.tuples(id_texts, id_texts, digests),
    st.tuples(id_texts, id_texts, digests),
)
@settings(max_examples=200)
def test_idempotency_keys_differ_for_different_inputs(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assume(a != b)
    assert idempotency_key(*a) != idempotency_key(*b)


def test_idempotency_key_depends_on_each_part() -> None:
    base = idempotency_key("exec_1", "outline", "a" * 64)
    assert idempotency_key("exec_2", "outline", "a" * 64) != base
    assert idempotency_key("exec_1", "report", "a" * 64) != base
    assert idempotency_key("exec_1", "outline", "b" * 64) != base
    # Moving text across the boundary between parts gives another key.
    assert idempotency_key("exec_1o", "utline", "a" * 64) != base


# -- result_cache_key ------------------------------------------------------------------------


def _cache_key(**changes: Any) -> str:
    args: dict[str, Any] = {
        "worker": "report_builder",
        "version": "1",
        "action": "build_report",
        "parameters": {"format": "markdown", "depth": 2},
        "bindings": {
            "structure": Binding(ref=OUTLINE, path=""),
            "topic": Binding(value="AI tools"),
        },
    }
    args.update(changes)
    return result_cache_key(**args)


def test_result_cache_key_is_stable_and_order_independent() -> None:
    key = _cache_key()
    assert key == _cache_key()
    assert key.startswith("rc_")
    assert _cache_key(parameters={"depth": 2, "format": "markdown"}) == key
    assert (
        _cache_key(
            bindings={
                "topic": Binding(value="AI tools"),
                "structure": Binding(ref=OUTLINE, path=""),
            }
        )
        == key
    )


def test_result_cache_key_follows_content_not_location() -> None:
    # The same bytes stored under another execution's key share a cache entry.
    moved = StorageRef.parse("kv://stages/e2/outline/output.json", size=10, sha256="a" * 64)
    assert (
        _cache_key(bindings={"structure": Binding(ref=moved), "topic": Binding(value="AI tools")})
        == _cache_key()
    )
    changed = StorageRef.parse("kv://stages/e1/outline/output.json", size=10, sha256="b" * 64)
    assert (
        _cache_key(bindings={"structure": Binding(ref=changed), "topic": Binding(value="AI tools")})
        != _cache_key()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"worker": "content_granulator"},
        {"version": "2"},
        {"action": "render"},
        {"parameters": {"format": "html", "depth": 2}},
        {"parameters": {"format": "markdown"}},
        {"bindings": {"structure": Binding(ref=OUTLINE, path="sections")}},
        {"bindings": {"structure": Binding(ref=OUTLINE), "topic": Binding(value="other")}},
        {"bindings": {}},
    ],
)
def test_result_cache_key_changes_with_every_part(change: dict[str, Any]) -> None:
    assert _cache_key(**change) != _cache_key()
