"""Templates as data: the shipped catalogue seeded as version 1, staff create, update and
retire templates (in process and over HTTP), every check a template must pass, the version
a running execution keeps, the cache across processes, and files that round-trip."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory import (
    AsyncFactory,
    AsyncSession,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from aifactory._embedded import EmbeddedFactory
from aifactory.cli import main
from aifactory.kam.catalogue import TemplateCatalogue
from aifactory.kam.template_checks import TemplateError, check_template, template_problems
from aifactory.kam.template_files import templates_from_text, templates_to_text
from aifactory.kam.templates import known_workers
from aifactory.models import (
    ExecutionStatus,
    ParameterSpec,
    StagePolicy,
    StageSpec,
    Template,
    Tier,
)
from aifactory.protocol.codec import unstructure
from aifactory.server import serving
from aifactory.workers import ReportBuilder
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.kam.test_budget import _Gated
from tests.servers import UvicornThread

pytestmark = pytest.mark.anyio

WORKERS = known_workers()


def _template(**changes: Any) -> Template:
    """A valid custom template: an outline, then a report from it."""
    template = Template(
        name="welding_guide",
        display_name="Welding guide",
        description="A safety guide for a workshop.",
        category="education",
        tiers=(Tier.BASIC, Tier.STANDARD),
        keywords=("welding", "safety", "workshop"),
        estimated_cost_usd="0.02",
        parameters=(
            ParameterSpec("topic", "string", max_length=200),
            ParameterSpec("depth", "integer", default=2, minimum=1, maximum=4),
            ParameterSpec("tone", "enum", default="plain", choices=("plain", "formal")),
        ),
        stages=(
            StageSpec(
                "outline",
                "content_granulator",
                "granulate",
                input_mapping={"topic": "params.topic|request.title"},
                parameters={"structure_type": "course"},
            ),
            StageSpec(
                "report",
                "report_builder",
                "build_report",
                depends_on=("outline",),
                input_mapping={"structure": "outline.output", "topic": "request.title"},
                deliverable=True,
            ),
        ),
    )
    return attrs.evolve(template, **changes)


def _stage(index: int, **changes: Any) -> tuple[StageSpec, ...]:
    stages = list(_template().stages)
    stages[index] = attrs.evolve(stages[index], **changes)
    return tuple(stages)


def _param(index: int, **changes: Any) -> tuple[ParameterSpec, ...]:
    params = list(_template().parameters)
    params[index] = attrs.evolve(params[index], **changes)
    return tuple(params)


# -- every check ---------------------------------------------------------------------------

BROKEN: dict[str, tuple[Callable[[], Template], str, str]] = {
    "name": (lambda: _template(name="Welding Guide"), "name", "lower-case"),
    "display name": (lambda: _template(display_name=" "), "display_name", "empty"),
    "no tier": (lambda: _template(tiers=()), "tiers", "no tier"),
    "cost": (lambda: _template(estimated_cost_usd="cheap"), "estimated_cost_usd", "amount"),
    "negative cost": (lambda: _template(estimated_cost_usd="-1"), "estimated_cost_usd", "not"),
    "time limit": (lambda: _template(max_execution_time_s=0), "max_execution_time_s", "pos"),
    "no stages": (lambda: _template(stages=()), "stages", "at least one"),
    "stage id": (lambda: _template(stages=_stage(0, id="out line")), "stages[0].id", "not"),
    "same id": (lambda: _template(stages=_stage(1, id="outline")), "stages[1].id", "another"),
    "worker": (lambda: _template(stages=_stage(0, worker="welder")), "stages[0].worker", "no "),
    "action": (lambda: _template(stages=_stage(0, action="weld")), "stages[0].action", "no act"),
    "unknown dependency": (
        lambda: _template(stages=_stage(1, depends_on=("draft",))),
        "stages[1].depends_on[0]",
        "no stage 'draft'",
    ),
    "self dependency": (
        lambda: _template(stages=_stage(0, depends_on=("outline",))),
        "stages[0].depends_on[0]",
        "itself",
    ),
    "cycle": (
        lambda: _template(stages=_stage(0, depends_on=("report",))),
        "stages",
        "cycle: outline -> report -> outline",
    ),
    "unknown parameter": (
        lambda: _template(stages=_stage(0, input_mapping={"topic": "params.subject"})),
        "stages[0].input_mapping.topic",
        "no parameter 'subject'",
    ),
    "request field": (
        lambda: _template(stages=_stage(0, input_mapping={"topic": "request.owner"})),
        "stages[0].input_mapping.topic",
        "no field 'owner'",
    ),
    "own output": (
        lambda: _template(stages=_stage(0, input_mapping={"topic": "outline.output"})),
        "stages[0].input_mapping.topic",
        "its own output",
    ),
    "malformed source": (
        lambda: _template(stages=_stage(1, input_mapping={"structure": "outline.result"})),
        "stages[1].input_mapping.structure",
        "STAGE.output",
    ),
    "no source": (
        lambda: _template(stages=_stage(1, input_mapping={"structure": " | "})),
        "stages[1].input_mapping.structure",
        "no source",
    ),
    "condition syntax": (
        lambda: _template(stages=_stage(0, condition="depth > 2")),
        "stages[0].condition",
        "params.NAME",
    ),
    "condition parameter": (
        lambda: _template(stages=_stage(0, condition="params.colour == 1")),
        "stages[0].condition",
        "no parameter 'colour'",
    ),
    "attempts": (
        lambda: _template(stages=_stage(0, policy=StagePolicy(maximum_attempts=0))),
        "stages[0].policy.maximum_attempts",
        "at least 1",
    ),
    "timeout": (
        lambda: _template(stages=_stage(0, policy=StagePolicy(start_to_close_s=-1))),
        "stages[0].policy.start_to_close_s",
        "positive",
    ),
    "backoff": (
        lambda: _template(stages=_stage(0, policy=StagePolicy(backoff_coefficient=0.5))),
        "stages[0].policy.backoff_coefficient",
        "at least 1",
    ),
    "parameter name": (
        lambda: _template(parameters=_param(0, name="Topic")),
        "parameters[0].name",
        "not a parameter name",
    ),
    "parameter twice": (
        lambda: _template(parameters=_param(1, name="topic")),
        "parameters[1].name",
        "twice",
    ),
    "parameter type": (
        lambda: _template(parameters=_param(0, type="text")),
        "parameters[0].type",
        "unknown type",
    ),
    "range": (
        lambda: _template(parameters=_param(1, minimum=5, maximum=2, default=None)),
        "parameters[1].minimum",
        "above the maximum",
    ),
    "enum": (
        lambda: _template(parameters=_param(2, choices=(), default=None)),
        "parameters[2].choices",
        "needs choices",
    ),
    "max length": (
        lambda: _template(parameters=_param(0, max_length=0)),
        "parameters[0].max_length",
        "at least 1",
    ),
    "editable unseen": (
        lambda: _template(
            parameters=_param(1, visible_tiers=(Tier.PREMIUM,), editable_tiers=(Tier.BASIC,))
        ),
        "parameters[1].editable_tiers",
        "only what it sees",
    ),
    "schema": (
        lambda: _template(
            parameters=(*_template().parameters, ParameterSpec("x", "object", schema={"type": 3}))
        ),
        "parameters[3].schema",
        "not a valid JSON Schema",
    ),
    "schema on a string": (
        lambda: _template(parameters=_param(0, schema={"type": "string"})),
        "parameters[0].schema",
        "only object and array",
    ),
    "default out of range": (
        lambda: _template(parameters=_param(1, default=9)),
        "parameters[1].default",
        "at most 4",
    ),
    "default not a choice": (
        lambda: _template(parameters=_param(2, default="loud")),
        "parameters[2].default",
        "one of",
    ),
    "default against its schema": (
        lambda: _template(
            parameters=(
                *_template().parameters,
                ParameterSpec("x", "array", default=[1], schema={"items": {"type": "string"}}),
            )
        ),
        "parameters[3].default",
        "is not of type 'string'",
    ),
}


def test_the_shipped_catalogue_and_the_example_pass_every_check() -> None:
    for template in [*TemplateCatalogue.builtin().list(), _template()]:
        assert template_problems(template, WORKERS) == [], template.name


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_each_problem_is_found_with_its_path(case: str) -> None:
    make, path, words = BROKEN[case]
    problems = template_problems(make(), WORKERS)
    assert any(p["path"] == path and words in p["message"] for p in problems), problems


def test_every_problem_is_listed_at_once() -> None:
    broken = _template(
        name="Bad",
        tiers=(),
        stages=_stage(1, worker="welder", depends_on=("draft",)),
    )
    with pytest.raises(TemplateError) as caught:
        check_template(broken, WORKERS)
    paths = [p["path"] for p in caught.value.details["problems"]]
    assert paths == ["name", "tiers", "stages[1].worker", "stages[1].depends_on[0]"]
    assert isinstance(caught.value, BadInputError)  # a 4xx over HTTP


# -- templates as files --------------------------------------------------------------------

_ids = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@st.composite
def valid_templates(draw: st.DrawFn) -> Template:
    """Valid templates: a chain of granulator stages ending in a report, with parameters."""
    names = draw(st.lists(_ids, min_size=1, max_size=4, unique=True))
    params = tuple(
        ParameterSpec(
            name,
            "integer",
            description=draw(_texts),
            default=draw(st.integers(0, 5)),
            minimum=0,
            maximum=draw(st.integers(5, 9)),
            visible_tiers=tuple(Tier),
            editable_tiers=draw(st.sets(st.sampled_from(Tier)).map(lambda s: tuple(sorted(s)))),
        )
        for name in names
    )
    count = draw(st.integers(1, 4))
    stages = [
        StageSpec(
            f"s{i}",
            "content_granulator",
            "granulate",
            depends_on=(f"s{i - 1}",) if i else (),
            input_mapping={"topic": f"params.{names[0]}|request.title"},
            parameters={"structure_type": draw(st.sampled_from(["course", "research_report"]))},
            condition=draw(st.sampled_from([None, f"params.{names[-1]} != 3"])),
            policy=StagePolicy(maximum_attempts=draw(st.integers(1, 5))),
        )
        for i in range(count)
    ]
    stages.append(
        StageSpec(
            "report",
            "report_builder",
            "build_report",
            input_mapping={"structure": f"s{count - 1}.output"},
            deliverable=True,
        )
    )
    return Template(
        name=draw(_ids),
        display_name=draw(_texts.filter(lambda t: t.strip() != "")),
        description=draw(_texts),
        category=draw(_texts),
        tiers=draw(st.sets(st.sampled_from(Tier), min_size=1).map(lambda s: tuple(sorted(s)))),
        stages=tuple(stages),
        parameters=params,
        keywords=tuple(draw(st.lists(_texts, max_size=3))),
        max_execution_time_s=draw(st.integers(1, 10_000)),
        allow_partial=draw(st.booleans()),
        estimated_cost_usd=str(draw(st.decimals(0, 100, places=2))),
    )


@settings(max_examples=40, deadline=None)
@given(template=valid_templates(), fmt=st.sampled_from(["json", "yaml"]))
def test_any_valid_template_survives_export_then_import(template: Template, fmt: str) -> None:
    assert template_problems(template, WORKERS) == []
    [back] = templates_from_text(templates_to_text([template], fmt))
    assert back == template


def test_a_file_with_a_misspelt_field_is_refused() -> None:
    data = unstructure(_template())
    data["stagez"] = data.pop("stages")
    with pytest.raises(BadInputError, match="welding_guide"):
        templates_from_text(templates_to_text([]).replace("[]", f"[{_json(data)}]"), "t.json")


def _json(data: Any) -> str:
    import json

    return json.dumps(data)


# -- staff change templates, in process and over HTTP --------------------------------------


@attrs.frozen
class World:
    factory: AsyncFactory
    admin: AsyncSession
    ana: AsyncSession
    client_id: str


async def _people(factory: AsyncFactory, password: str) -> World:
    admin = await factory.login(ADMIN, password, login_type="admin")
    acme = await admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
    await admin.users.create(email=ANA, password=ANA_PASSWORD, client_id=acme.id)
    return World(factory, admin, await factory.login(ANA, ANA_PASSWORD), acme.id)


@pytest.fixture(params=["in-process", "http"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    if request.param == "in-process":
        async with AsyncFactory.embedded(config=fast_config()) as factory:
            yield await _people(factory, await factory.bootstrap_admin(ADMIN))
        return
    runtime = EmbeddedFactory(fast_config())
    password = await runtime.accounts.bootstrap_admin(ADMIN)
    with UvicornThread(serving(runtime)) as server:
        async with AsyncFactory.connect(server.url) as factory:
            yield await _people(factory, password)


async def test_the_shipped_templates_are_version_one_of_builtin_templates(world: World) -> None:
    shipped = {t.name for t in TemplateCatalogue.builtin().list()}
    assert {t.name for t in await world.admin.templates.list()} == shipped
    [first] = await world.admin.templates.versions("quick_research")
    assert (first.version, first.created_by, first.retired) == (1, "builtin", False)


async def test_staff_create_update_and_retire_a_template(world: World) -> None:
    admin = world.admin
    created = await admin.templates.create(_template())
    assert (created.name, created.version) == ("welding_guide", 1)
    assert created.created_by.startswith("user:")
    # Offered to the tiers it names, and found by the recommendation's keywords.
    assert "welding_guide" in {t.name for t in await world.ana.templates.list()}
    request = await world.ana.requests.create(
        title="A welding safety guide for our workshop", category="education"
    )
    found = await admin.templates.recommend(request.id, use_llm=False)
    assert found[0].template == "welding_guide"

    with pytest.raises(ConflictError, match="exists"):
        await admin.templates.create(_template())
    changed = _template(description="A shorter safety guide.", estimated_cost_usd="0.01")
    updated = await admin.templates.update("welding_guide", changed, expected_version=1)
    assert updated.version == 2
    assert (await admin.templates.get("welding_guide")).description == "A shorter safety guide."
    assert (await admin.templates.get("welding_guide", version=1)).description == (
        "A safety guide for a workshop."
    )
    with pytest.raises(ConflictError, match="at version 2, not 1"):
        await admin.templates.update("welding_guide", changed, expected_version=1)
    with pytest.raises(BadInputError, match="named"):
        await admin.templates.update("quick_research", changed)

    retired = await admin.templates.retire("welding_guide")
    assert retired.retired
    assert "welding_guide" not in {t.name for t in await admin.templates.list()}
    with pytest.raises(NotFoundError, match="retired"):
        await admin.requests.assign_template(request.id, "welding_guide")
    with pytest.raises(ConflictError, match="retired"):
        await admin.templates.update("welding_guide", changed)
    assert [v.version for v in await admin.templates.versions("welding_guide")] == [1, 2]

    actions = [e.action for e in await admin.audit.list(limit=50)]
    assert {"template.create", "template.update", "template.retire"} <= set(actions)


async def test_a_bad_template_is_refused_with_every_problem(world: World) -> None:
    with pytest.raises(BadInputError) as caught:
        await world.admin.templates.create(_template(stages=_stage(0, worker="welder")))
    assert caught.value.details["problems"] == [
        {
            "path": "stages[0].worker",
            "message": "no worker 'welder'; known: " + ", ".join(sorted(WORKERS)),
        }
    ]
    with pytest.raises(BadInputError):
        await world.admin.templates.create({**unstructure(_template()), "colour": "red"})


async def test_clients_read_templates_but_do_not_change_them(world: World) -> None:
    with pytest.raises(PermissionDeniedError):
        await world.ana.templates.create(_template())
    with pytest.raises(PermissionDeniedError):
        await world.ana.templates.retire("quick_research")
    with pytest.raises(PermissionDeniedError):
        await world.ana.templates.versions("quick_research")


# -- versions and the cache ----------------------------------------------------------------


async def test_a_running_execution_keeps_the_version_it_started_with() -> None:
    gate = threading.Event()
    config = fast_config(workers=[_Gated(gate), ReportBuilder()])
    async with AsyncFactory.embedded(config=config) as factory:
        world = await _people(factory, await factory.bootstrap_admin(ADMIN))
        await world.admin.templates.create(_template())
        first = await world.ana.requests.create(title="Welding safety")
        await world.admin.requests.assign_template(first.id, "welding_guide")
        running = await world.admin.requests.execute(first.id)

        two_reports = _template(
            stages=(
                *_template().stages,
                StageSpec(
                    "summary",
                    "report_builder",
                    "build_report",
                    input_mapping={"structure": "outline.output"},
                    deliverable=True,
                ),
            )
        )
        await world.admin.templates.update("welding_guide", two_reports)
        second = await world.ana.requests.create(title="Welding safety again")
        await world.admin.requests.assign_template(second.id, "welding_guide")
        later = await world.admin.requests.execute(second.id)
        gate.set()
        done = await world.admin.executions.wait(running.id, timeout_s=30)
        assert done.status is ExecutionStatus.COMPLETED
        assert [s.id for s in done.template.stages] == ["outline", "report"]
        done_later = await world.admin.executions.wait(later.id, timeout_s=30)
        assert [s.id for s in done_later.template.stages] == ["outline", "report", "summary"]


async def test_a_change_reaches_every_process_sharing_the_state(tmp_path: Path) -> None:
    shared = tmp_path / "home"
    config = fast_config(home=shared, state_url=None)
    async with (
        AsyncFactory.embedded(config=attrs.evolve(config, template_check_s=0)) as one,
        AsyncFactory.embedded(config=attrs.evolve(config, template_check_s=3600)) as two,
    ):
        password = await one.bootstrap_admin(ADMIN)
        admin_one = await one.login(ADMIN, password, login_type="admin")
        admin_two = await two.login(ADMIN, password, login_type="admin")
        assert "welding_guide" not in {t.name for t in await admin_one.templates.list()}
        assert "welding_guide" not in {t.name for t in await admin_two.templates.list()}
        await admin_two.templates.create(_template())
        # The process that changed it sees it at once; process one checks the store at
        # every read: it sees it at once too.
        assert "welding_guide" in {t.name for t in await admin_two.templates.list()}
        assert "welding_guide" in {t.name for t in await admin_one.templates.list()}
        await admin_one.templates.retire("welding_guide")
        # Process two checks every hour: its cache still offers the template...
        assert "welding_guide" in {t.name for t in await admin_two.templates.list()}
        # ...until its next check.
        two._runtime.templates.check_interval_s = 0  # type: ignore[union-attr]
        assert "welding_guide" not in {t.name for t in await admin_two.templates.list()}


# -- the command line ----------------------------------------------------------------------


def test_templates_check_export_and_import_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.json"
    good.write_text(templates_to_text([_template()], "yaml"))
    bad.write_text(templates_to_text([_template(stages=_stage(0, action="weld"))]))
    assert main(["templates", "check", str(good)]) == 0
    assert main(["templates", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().err
    assert "good.yaml: welding_guide: ok" in out
    assert "stages[0].action: content_granulator has no action 'weld'" in out

    home = tmp_path / "factory"
    assert main(["init", "--home", str(home), "--admin-email", ADMIN]) == 0
    assert main(["templates", "import", "--home", str(home), str(good)]) == 0
    assert "welding_guide: version 1" in capsys.readouterr().err
    assert main(["templates", "import", "--home", str(home), str(bad)]) == 1  # none saved
    exported = tmp_path / "all.json"
    assert main(["templates", "export", "--home", str(home), "--out", str(exported)]) == 0
    names = [t.name for t in templates_from_text(exported.read_text())]
    assert names == sorted([*(t.name for t in TemplateCatalogue.builtin().list()), "welding_guide"])
    assert main(["templates", "export", "--home", str(home), "welding_guide"]) == 0
    assert templates_from_text(capsys.readouterr().out) == [_template()]


async def test_the_shipped_catalogue_upgrades_templates_staff_left_alone(tmp_path: Path) -> None:
    config = fast_config(home=tmp_path / "home", state_url=None)
    runtime = EmbeddedFactory(config)
    try:
        service = runtime.templates
        await service.list()
        older = attrs.evolve(service.shipped.get("quick_research"), description="Older text.")
        # As if an earlier release had shipped `older`: its version is the store's latest.
        await runtime.store.add_template_version(older, config.clock.now(), "builtin")
        service._seeded, service._cache = False, None
        await service.list()
        versions = await runtime.store.template_versions("quick_research")
        assert [(v.version, v.created_by) for v in versions] == [
            (1, "builtin"),
            (2, "builtin"),
            (3, "builtin"),
        ]
        assert versions[-1].template == service.shipped.get("quick_research")
        # A template staff changed is theirs: the shipped one does not replace it.
        mine = attrs.evolve(versions[-1].template, description="Ours.")
        await runtime.store.add_template_version(mine, config.clock.now(), "user:usr_1")
        service._seeded, service._cache = False, None
        assert (await service.get("quick_research")).description == "Ours."
    finally:
        await runtime.store.aclose()
        await anyio.lowlevel.checkpoint()
