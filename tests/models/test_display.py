"""How model values display in a REPL or notebook: bounded reprs and escaped HTML cards."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import attrs
import pytest

from aifactory import AsyncFactory
from aifactory.models import (
    Checkpoint,
    Client,
    Cost,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    Notification,
    ParameterSpec,
    Request,
    RequestStatus,
    Session,
    StagePolicy,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
    Tier,
    Urgency,
    Usage,
)
from aifactory.models._display import bounded, compact, iso, plain_decimal
from aifactory.protocol.codec import structure, unstructure
from tests.helpers import fast_config, setup_people

AT = datetime(2026, 11, 28, 23, 3, 6, 627037, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"
SECRET = b"bytes that must never be printed"


def quick_research() -> Template:
    """A template shaped like the catalogue's `quick_research`."""
    return Template(
        name="quick_research",
        display_name="Quick research",
        description="A research outline for a topic and a short Markdown report built from it.",
        category="research",
        tiers=tuple(Tier),
        stages=(
            StageSpec(
                "outline",
                "content_granulator",
                "granulate",
                input_mapping={"topic": "params.topic|request.title"},
                parameters={"structure_type": "research_report"},
            ),
            StageSpec(
                "report",
                "report_builder",
                "build_report",
                depends_on=("outline",),
                input_mapping={"structure": "outline.output"},
                deliverable=True,
                policy=StagePolicy(maximum_attempts=3),
            ),
        ),
        parameters=(
            ParameterSpec("topic", "string", "What to research.", max_length=500),
            ParameterSpec("granularity", "integer", "Depth.", default=2, minimum=1, maximum=5),
        ),
        keywords=("research", "analysis"),
        max_execution_time_s=300,
        estimated_cost_usd="0.05",
    )


def execution(**changes: Any) -> Execution:
    value = Execution(
        id="exec_06h28phptffcmsno9j707sb2i4",
        request_id="req_06h28phpt1uu4lifbo39vp9ek0",
        client_id="cli_06h28php4a3fftgqqn8nq83mpk",
        template=quick_research(),
        parameters={"granularity": 2, "max_summary_sentences": 5, "target_audience": "general"},
        status=ExecutionStatus.COMPLETED,
        created_at=AT,
        updated_at=AT + timedelta(milliseconds=19),
        started_at=AT + timedelta(milliseconds=6),
        finished_at=AT + timedelta(milliseconds=18),
        usage=Usage(bytes_stored=3934, compute_ms=7),
        cost=Cost(storage_usd=Decimal("0.00000196"), compute_usd=Decimal("0E-8")),
        stages_total=2,
        stages_done=2,
        context={
            "request": {
                "category": "general",
                "description": "",
                "title": "Market analysis for AI tools",
                "urgency": "normal",
            }
        },
        runs=1,
    )
    return attrs.evolve(value, **changes)


def request(**changes: Any) -> Request:
    value = Request(
        id="req_06h28phpt1uu4lifbo39vp9ek0",
        client_id="cli_06h28php4a3fftgqqn8nq83mpk",
        created_by="usr_06h28phpgsg7b3o2t3hclci3r8",
        title="Market analysis for AI tools",
        description="",
        urgency=Urgency.NORMAL,
        category="general",
        status=RequestStatus.COMPLETED,
        created_at=AT,
        updated_at=AT,
        template_name="quick_research",
        parameters={"granularity": 2},
        execution_id="exec_06h28phptffcmsno9j707sb2i4",
    )
    return attrs.evolve(value, **changes)


def stage_run(**changes: Any) -> StageRun:
    value = StageRun(
        execution_id="exec_1",
        stage_id="report",
        worker="report_builder",
        status=StageStatus.SUCCEEDED,
        attempt=1,
        input_ref=StorageRef.inline(SECRET),
        output_ref=StorageRef.parse("kv://stages/exec_1/report", size=945),
        summary={"continue_pipeline": True},
        usage=Usage(prompt_tokens=120, completion_tokens=80),
        cost=Cost(llm_usd=Decimal("0.0012")),
        started_at=AT,
        finished_at=AT + timedelta(seconds=2),
    )
    return attrs.evolve(value, **changes)


def deliverable(**changes: Any) -> Deliverable:
    value = Deliverable(
        id="dlv_1",
        request_id="req_1",
        client_id="cli_1",
        execution_id="exec_1",
        type="report",
        filename="report.md",
        media_type="text/markdown",
        ref=StorageRef.inline(SECRET, "text/markdown"),
        created_at=AT,
        metadata={"stage": "report"},
    )
    return attrs.evolve(value, **changes)


def event(**changes: Any) -> ExecutionEvent:
    value = ExecutionEvent("exec_1", 3, AT, "stage.progress", "outline", {"percent": 10})
    return attrs.evolve(value, **changes)


def samples() -> list[Any]:
    """One of each displayed model, with the awkward fields filled in."""
    return [
        execution(),
        request(),
        stage_run(),
        deliverable(),
        event(),
        quick_research(),
        Notification("ntf_1", "usr_1", "execution.completed", "Done", AT, {"id": "exec_1"}),
        Client("cli_1", "Acme", Tier.STANDARD, Decimal("50"), Decimal("0.10"), "2026-11", AT),
        Checkpoint("exec_1", 2, {"outline": StorageRef.inline(SECRET)}, AT),
    ]


# -- reprs ----------------------------------------------------------------------------------


def test_an_execution_repr_names_its_template_and_stays_short() -> None:
    text = repr(execution())
    assert len(text) <= 640, len(text)  # the attrs default was about 4,200
    assert text.startswith("Execution(id='exec_06h28phptffcmsno9j707sb2i4', request_id=")
    assert "template='quick_research'" in text
    assert "status='completed'" in text
    assert "created_at='2026-11-28T23:03:06.627Z'" in text
    assert "finished_at='2026-11-28T23:03:06.645Z'" in text
    assert "usage=Usage(bytes_stored=3934, compute_ms=7)" in text
    # 0E-8 equals zero, so the default is left out; the money that was spent is kept exact.
    assert "cost=Cost(storage_usd=Decimal('0.00000196'))" in text
    assert "stages_total=2, stages_done=2" in text
    assert "'target_audience': 'general'" in text
    for noise in ("StageSpec", "StagePolicy", "datetime.datetime", "<ExecutionStatus", "Tier."):
        assert noise not in text


def test_reprs_keep_every_field_in_order() -> None:
    for value in samples():
        names = re.findall(r"[(,] (\w+)=|\((\w+)=", repr(value))
        shown = [a or b for a, b in names]
        fields = [f.name for f in attrs.fields(type(value)) if f.repr is not False]
        # Nested reprs may add names after a field's own; the fields come first, in order.
        assert [name for name in shown if name in fields][: len(fields)] == fields, type(value)


def test_reprs_show_enums_by_value_and_datetimes_in_iso_8601() -> None:
    client = Client("cli_1", "Acme", Tier.PREMIUM, Decimal("50.00"), Decimal("0E-8"), "m", AT)
    assert repr(client) == (
        "Client(id='cli_1', name='Acme', tier='premium', monthly_budget_usd=Decimal('50'), "
        "used_this_month_usd=Decimal('0'), month='m', created_at='2026-11-28T23:03:06.627Z', "
        "active=True)"
    )
    assert "urgency='normal'" in repr(request())
    assert "status='succeeded'" in repr(stage_run())


def test_huge_text_and_mappings_are_cut() -> None:
    huge = request(
        title="T" * 5000,
        description="D" * 100_000,
        parameters={f"p{i}": "v" * 100 for i in range(1000)},
    )
    text = repr(huge)
    assert len(text) < 700, len(text)
    assert "'" + "T" * 60 in text
    assert "…'" in text
    assert "'p0': " in text
    assert ", ...}" in text
    failed = execution(error="E" * 50_000, context={"request": {"description": "D" * 50_000}})
    assert len(repr(failed)) < 900
    assert "error='EEEE" in repr(failed)


def test_bytes_are_never_shown() -> None:
    for value in (stage_run(), deliverable(), samples()[-1], StorageRef.inline(SECRET)):
        text = repr(value)
        assert "must never" not in text
        assert not re.search(r"\bdata=", text)
    assert "input_ref='inline:<32 bytes>'" in repr(stage_run())
    assert "output_ref='kv://stages/exec_1/report'" in repr(stage_run())
    assert "ref='inline:<32 bytes>'" in repr(deliverable())


def test_a_template_shows_its_stages_and_parameters_by_id() -> None:
    text = repr(quick_research())
    assert "stages=('outline', 'report')" in text
    assert "parameters=('topic', 'granularity')" in text
    assert "tiers=('basic', 'standard', 'premium', 'enterprise')" in text
    spec = repr(quick_research().stages[1])
    assert "policy=StagePolicy(maximum_attempts=3)" in spec
    assert "policy=StagePolicy()" in repr(quick_research().stages[0])


def test_bounded_keeps_order_and_marks_cuts() -> None:
    assert bounded({"b": 1, "a": 2}) == "{'b': 1, 'a': 2}"  # not sorted, unlike reprlib
    assert bounded("x" * 50, 20) == "'" + "x" * 17 + "…'"
    assert bounded(list(range(100)), 20) == "[0, 1, 2, 3, 4, ...]"
    assert bounded(("a",)) == "('a',)"
    assert bounded({"request": {"title": "t" * 100}}, 30) == "{'request': {...}}"
    assert bounded({}) == "{}"
    assert bounded(None) == "None"
    for budget in (8, 20, 50, 100, 400):
        nested = {f"key{i}": {"inner": ["y" * 300] * 10} for i in range(50)}
        assert len(bounded(nested, budget)) <= budget + 12


def test_compact_leaves_out_defaults() -> None:
    assert compact(Usage()) == "Usage()"
    assert compact(Usage(prompt_tokens=5)) == "Usage(prompt_tokens=5)"
    assert compact(Cost(llm_usd=Decimal("0E-8"))) == "Cost()"
    assert compact(StagePolicy(cache=False)) == "StagePolicy(cache=False)"


def test_iso_and_plain_decimals() -> None:
    assert iso(AT) == "2026-11-28T23:03:06.627Z"
    assert iso(AT.replace(microsecond=0)) == "2026-11-28T23:03:06Z"
    plus_two = timezone(timedelta(hours=2))
    assert iso(AT.replace(microsecond=0, tzinfo=plus_two)) == "2026-11-28T23:03:06+02:00"
    assert iso(AT.replace(microsecond=0, tzinfo=None)) == "2026-11-28T23:03:06"
    assert [plain_decimal(Decimal(t)) for t in ("0E-8", "50", "1E+2", "10.50", "-0.0")] == [
        "0",
        "50",
        "100",
        "10.5",
        "0",
    ]


# -- only the display changed ---------------------------------------------------------------


def test_equality_still_sees_what_the_repr_cuts() -> None:
    one = request(description="D" * 1000 + "1")
    two = request(description="D" * 1000 + "2")
    assert repr(one) == repr(two)
    assert one != two
    assert execution() != execution(template=attrs.evolve(quick_research(), description="x"))


@pytest.mark.parametrize("value", samples(), ids=lambda value: type(value).__name__)
def test_values_round_trip_unchanged(value: Any) -> None:
    assert attrs.evolve(value) == value
    assert structure(unstructure(value), type(value)) == value


def test_hashes_and_serialisation_are_unchanged() -> None:
    assert hash(Usage(1, 2)) == hash(Usage(1, 2))
    assert hash(StagePolicy(maximum_attempts=3)) == hash(StagePolicy(maximum_attempts=3))
    ref = StorageRef.parse("kv://stages/a", size=3)
    assert {ref, StorageRef.parse("kv://stages/a", size=3)} == {ref}
    # Captured from the attrs default reprs' days: field names, order and encodings.
    assert unstructure(event()) == {
        "execution_id": "exec_1",
        "seq": 3,
        "at": "2026-11-28T23:03:06.627037+00:00",
        "kind": "stage.progress",
        "stage_id": "outline",
        "data": {"percent": 10},
    }
    data = unstructure(execution())
    assert list(data) == [f.name for f in attrs.fields(Execution)]
    assert list(data) == [
        "id",
        "request_id",
        "client_id",
        "template",
        "parameters",
        "status",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "error",
        "usage",
        "cost",
        "stages_total",
        "stages_done",
        "context",
        "resources",
        "runs",
        "trace",  # added (schema version 9): the traceparent a run continues
    ]
    assert data["cost"] == {"llm_usd": "0", "storage_usd": "0.00000196", "compute_usd": "0E-8"}
    assert data["template"]["stages"][1]["policy"]["maximum_attempts"] == 3


# -- HTML -----------------------------------------------------------------------------------

VOID = {"br", "hr", "img", "input", "meta", "link", "wbr"}
EMITTED = {"div", "strong", "code", "span", "table", "tr", "th", "td", "progress", "pre"}


class TagChecker(HTMLParser):
    """Records the tags of a fragment and fails on any close that does not match its open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.seen: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(markup: str) -> TagChecker:
    """Parse `markup`: balanced, only our tags, only inline styles, nothing that loads."""
    checker = TagChecker()
    checker.feed(markup)
    checker.close()
    assert checker.open == [], f"unclosed: {checker.open}"
    assert checker.seen <= EMITTED, checker.seen - EMITTED
    assert {name for name, _ in checker.attributes} <= {"style", "value", "max"}
    assert "<script" not in markup.lower()
    assert "http" not in markup.lower()
    return checker


def hostile_samples() -> list[Any]:
    """Every user- or worker-controlled text of each displayed model carries markup."""
    bad = {HOSTILE: f"<img src=x onerror=alert(1)> {HOSTILE}"}
    template = quick_research()
    return [
        execution(error=HOSTILE, parameters=bad, id=HOSTILE),
        request(title=HOSTILE, description=HOSTILE * 3, parameters=bad, category=HOSTILE),
        stage_run(error=HOSTILE, summary=bad, stage_id=HOSTILE, worker=HOSTILE),
        deliverable(filename=HOSTILE, metadata=bad, type=HOSTILE, media_type=HOSTILE),
        event(kind=HOSTILE, data=bad, stage_id=HOSTILE),
        attrs.evolve(
            template,
            display_name=HOSTILE,
            description=HOSTILE,
            stages=(attrs.evolve(template.stages[0], id=HOSTILE, condition=HOSTILE),),
            parameters=(ParameterSpec(HOSTILE, "string", HOSTILE, default=HOSTILE),),
        ),
    ]


@pytest.mark.parametrize("value", hostile_samples(), ids=lambda value: type(value).__name__)
def test_html_escapes_everything_users_control(value: Any) -> None:
    markup = value._repr_html_()
    checker = check_html(markup)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<img" not in markup
    # Escaped, the hostile text reads as itself.
    assert HOSTILE in "".join(checker.text)


@pytest.mark.parametrize("value", samples()[:6], ids=lambda value: type(value).__name__)
def test_html_is_well_formed_and_bounded(value: Any) -> None:
    check_html(value._repr_html_())
    huge = {f"k{i}": "v" * 1000 for i in range(1000)}
    field = {
        Execution: "parameters",
        Request: "parameters",
        StageRun: "summary",
        Deliverable: "metadata",
        ExecutionEvent: "data",
        Template: "description",
    }[type(value)]
    big = attrs.evolve(value, **{field: "t" * 100_000 if field == "description" else huge})
    assert len(big._repr_html_()) < len(value._repr_html_()) + 2500


def test_execution_html_shows_progress_cost_usage_and_error() -> None:
    running = execution(
        status=ExecutionStatus.FAILED,
        stages_done=1,
        error="stage report failed: the model is down",
        usage=Usage(prompt_tokens=1200, completion_tokens=300, bytes_stored=4096),
        cost=Cost(llm_usd=Decimal("0.0123")),
    )
    markup = running._repr_html_()
    text = "".join(check_html(markup).text)
    assert '<progress value="1" max="2">' in markup
    assert "1/2 stages" in text
    assert "Quick research" in text
    assert "quick_research" in text
    assert "failed" in text
    assert "$0.0123" in text
    assert "1500 tokens (1200 prompt, 300 completion)" in text
    assert "4.0 KiB" in text
    assert "stage report failed: the model is down" in text
    assert "2026-11-28T23:03:06.627Z" in text
    assert "0.012 s" in text
    assert "error" not in "".join(check_html(execution()._repr_html_()).text)


def test_template_html_has_a_row_per_stage_and_parameter() -> None:
    markup = quick_research()._repr_html_()
    check_html(markup)
    assert markup.count("<tr>") == 6 + (1 + 2) + (1 + 2)  # facts, stages, parameters
    assert "<code>content_granulator</code>" in markup
    assert "<code>outline</code>" in markup


def test_other_html_cards_carry_their_essentials() -> None:
    text = "".join(check_html(stage_run()._repr_html_()).text)
    assert "report_builder" in text
    assert "kv://stages/exec_1/report" in text
    assert "2.000 s" in text
    assert "must never" not in text
    text = "".join(check_html(deliverable()._repr_html_()).text)
    assert "report.md" in text
    assert "32 B" in text
    assert "text/markdown" in text
    text = "".join(check_html(event()._repr_html_()).text)
    assert "#3" in text
    assert "stage.progress" in text
    assert "'percent': 10" in text


# -- through the factory --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_real_quick_research_run_displays_compactly() -> None:
    async with AsyncFactory.embedded(config=fast_config()) as factory:
        people = await setup_people(factory)
        created = await people.ana.requests.create(title=HOSTILE)
        await people.admin.requests.assign_template(created.id, "quick_research")
        started = await people.admin.requests.execute(created.id)
        final = await people.admin.executions.wait(started.id)
        stages = list(await people.admin.executions.stages(final.id))
        loaded = await people.ana.requests.get(created.id)

    assert final.status is ExecutionStatus.COMPLETED
    text = repr(final)
    assert len(text) <= 640, text
    assert f"id={final.id!r}" in text
    assert "template='quick_research'" in text
    assert "status='completed'" in text
    assert "stages_done=2" in text
    assert all(len(repr(stage)) < 700 for stage in stages)
    for value in (final, loaded, *stages, final.template):
        markup = value._repr_html_()
        check_html(markup)
    assert "&lt;script&gt;" in loaded._repr_html_()


def test_a_session_shows_only_the_start_of_its_token_hash() -> None:
    token_hash = "ab" * 32
    session = Session(
        token_hash, "usr_1", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert token_hash not in repr(session)
    assert "abababababab…" in repr(session)
    assert session == attrs.evolve(session)
