"""The stage input document the orchestrator writes is exactly the codec's StageInput."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aifactory.orchestrator.records import input_document
from aifactory.protocol.codec import dumps, unstructure
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
