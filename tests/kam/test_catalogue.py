"""The built-in template catalogue: it loads, every template is a valid pipeline, tiers filter."""

from __future__ import annotations

import re

import pytest

from aifactory._exceptions import BadInputError, NotFoundError
from aifactory.kam.catalogue import TemplateCatalogue
from aifactory.kam.parameters import validate_parameters
from aifactory.models import StageSpec, Template, Tier
from aifactory.orchestrator.planning import topological_order, validate_template

SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
REQUIRED = {"quick_research", "comprehensive_report_pipeline", "educational_course_basic"}


@pytest.fixture(scope="module")
def catalogue() -> TemplateCatalogue:
    return TemplateCatalogue.builtin()


def all_templates() -> list[Template]:
    return TemplateCatalogue.builtin().list()


def test_the_builtin_catalogue_holds_the_documented_templates(
    catalogue: TemplateCatalogue,
) -> None:
    names = [t.name for t in catalogue.list()]
    assert set(names) >= REQUIRED
    assert names == sorted(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_get_returns_the_named_template(catalogue: TemplateCatalogue, name: str) -> None:
    template = catalogue.get(name)
    assert isinstance(template, Template)
    assert template.name == name
    assert template.stages


def test_get_of_an_unknown_name_is_not_found(catalogue: TemplateCatalogue) -> None:
    with pytest.raises(NotFoundError) as info:
        catalogue.get("no_such_template")
    assert info.value.details["template"] == "no_such_template"
    assert set(info.value.details["known"]) >= REQUIRED


@pytest.mark.parametrize("template", all_templates(), ids=lambda t: t.name)
def test_every_template_is_a_valid_pipeline(template: Template) -> None:
    validate_template(template)
    assert len(topological_order(template)) == len(template.stages)


@pytest.mark.parametrize("template", all_templates(), ids=lambda t: t.name)
def test_every_worker_name_is_snake_case(template: Template) -> None:
    for stage in template.stages:
        assert SNAKE_CASE.fullmatch(stage.worker), stage.worker
        assert SNAKE_CASE.fullmatch(stage.id), stage.id


@pytest.mark.parametrize("template", all_templates(), ids=lambda t: t.name)
def test_every_template_is_usable_and_delivers_something(template: Template) -> None:
    assert template.tiers, "no tier may use it"
    assert template.display_name
    assert any(stage.deliverable for stage in template.stages)


@pytest.mark.parametrize("template", all_templates(), ids=lambda t: t.name)
def test_inputs_only_read_declared_parameters(template: Template) -> None:
    declared = {p.name for p in template.parameters}
    for stage in template.stages:
        for expression in stage.input_mapping.values():
            for source in (s.strip() for s in expression.split("|")):
                if source.startswith("params."):
                    assert source.removeprefix("params.") in declared, (stage.id, source)


@pytest.mark.parametrize(
    ("template", "tier"),
    [(t, tier) for t in all_templates() for tier in t.tiers],
    ids=lambda v: v.name if isinstance(v, Template) else str(v),
)
def test_the_defaults_of_every_template_validate_on_every_allowed_tier(
    template: Template, tier: Tier
) -> None:
    params = validate_parameters(template, tier, {})
    for spec in template.parameters:
        if tier in spec.visible_tiers and spec.default is not None:
            assert params[spec.name] == spec.default


@pytest.mark.parametrize("tier", list(Tier))
def test_listing_by_tier_returns_exactly_the_templates_the_tier_may_use(
    catalogue: TemplateCatalogue, tier: Tier
) -> None:
    listed = catalogue.list(tier)
    everything = catalogue.list()
    assert [t.name for t in listed] == [t.name for t in everything if tier in t.tiers]
    assert all(t.allows(tier) for t in listed)


def test_tier_filtering_of_the_builtin_templates(catalogue: TemplateCatalogue) -> None:
    basic = {t.name for t in catalogue.list(Tier.BASIC)}
    standard = {t.name for t in catalogue.list(Tier.STANDARD)}
    assert {"quick_research", "educational_course_basic"} <= basic
    assert "comprehensive_report_pipeline" not in basic
    assert "comprehensive_report_pipeline" in standard
    assert basic <= standard


def test_a_custom_catalogue_refuses_an_invalid_template() -> None:
    broken = Template(
        "broken",
        "Broken",
        "",
        "test",
        tuple(Tier),
        (StageSpec("a", "w", depends_on=("b",)), StageSpec("b", "w", depends_on=("a",))),
    )
    with pytest.raises(BadInputError):
        TemplateCatalogue([broken])


def test_a_custom_catalogue_lists_and_gets_its_templates() -> None:
    one = Template("one", "One", "", "test", (Tier.PREMIUM,), (StageSpec("s", "w"),))
    two = Template("two", "Two", "", "test", tuple(Tier), (StageSpec("s", "w"),))
    catalogue = TemplateCatalogue([two, one])
    assert catalogue.list() == [one, two]
    assert catalogue.list(Tier.BASIC) == [two]
    assert catalogue.get("one") is one
    with pytest.raises(NotFoundError):
        TemplateCatalogue([]).get("one")
