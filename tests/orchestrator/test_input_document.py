"""The stage input document the orchestrator writes is exactly the codec's StageInput."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aifactory import BadInputError
from aifactory.orchestrator.records import input_document
from aifactory.protocol.codec import dumps, stage_input, structure, unstructure
from aifactory.protocol.messages import Binding, StageInput
from tests.protocol.test_codec import bindings, json_objects


@given(
    st.text(max_size=8),
    json_objects,
    st.dictionaries(st.text(max_size=6), bindings, max_size=3),
)
def test_the_document_is_the_codecs_stage_input(
    action: str, params: dict[str, Any], bound: dict[str, Binding]
) -> None:
    assert input_document(action, params, bound) == dumps(
        unstructure(StageInput(action, params, bound))
    )


def test_values_json_cannot_hold_go_through_the_converter() -> None:
    params = {"budget": Decimal("1.50"), "tags": ("a", "b")}
    expected = dumps(unstructure(StageInput("act", params, {"x": Binding(value=Decimal("2"))})))
    assert input_document("act", params, {"x": Binding(value=Decimal("2"))}) == expected


@given(
    st.text(max_size=8),
    json_objects,
    st.dictionaries(st.text(max_size=6), bindings, max_size=3),
)
def test_reading_the_document_back_gives_what_was_written(
    action: str, params: dict[str, Any], bound: dict[str, Binding]
) -> None:
    document = json.loads(input_document(action, params, bound))
    assert stage_input(document) == structure(document, StageInput)
    assert stage_input(document) == StageInput(action, params, bound)


# Documents bent out of shape one place at a time: a key missing or added, a value of
# another type, a binding that is no object, a reference that is no reference.
_odd = st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.lists(st.none())


@st.composite
def bent_documents(draw: st.DrawFn) -> Any:
    document = json.loads(
        input_document(
            draw(st.text(max_size=4)),
            draw(json_objects),
            draw(st.dictionaries(st.text(max_size=4), bindings, min_size=1, max_size=2)),
        )
    )
    where = draw(st.sampled_from(["top", "field", "binding", "binding_field", "ref_field"]))
    binding = next(iter(document["bindings"].values()))
    if where == "top":
        return draw(_odd)
    if where == "field":
        field = draw(st.sampled_from(["action", "parameters", "bindings", "extra"]))
        if draw(st.booleans()):
            document.pop(field, None)
        else:
            document[field] = draw(_odd)
    elif where == "binding":
        document["bindings"]["b"] = draw(_odd)
    elif where == "binding_field":
        binding[draw(st.sampled_from(["path", "ref", "value", "extra"]))] = draw(_odd)
    elif isinstance(binding["ref"], dict):
        field = draw(st.sampled_from(["inline", "ref", "size", "sha256", "media_type"]))
        binding["ref"][field] = draw(_odd | st.just("not base64!"))
    return document


@given(bent_documents())
def test_a_bent_document_reads_as_the_converter_reads_it(document: Any) -> None:
    try:
        expected: Any = structure(document, StageInput)
    except BadInputError as exc:
        expected = exc.message
    try:
        got: Any = stage_input(document)
    except BadInputError as exc:
        got = exc.message
    assert got == expected
