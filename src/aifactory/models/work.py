"""Requests, pipeline templates, deliverables and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from . import _html
from ._display import (
    MAPPING,
    TEXT,
    bounded_repr,
    compact,
    enum_repr,
    enums_repr,
    iso_repr,
    names_repr,
    ref_repr,
)
from .enums import RequestStatus, Tier, Urgency
from .storage_ref import StorageRef

__all__ = [
    "Deliverable",
    "Notification",
    "ParameterSpec",
    "Recommendation",
    "Request",
    "StagePolicy",
    "StageSpec",
    "Template",
]


@attrs.frozen
class Request:
    """A client's request for a piece of work, and where it stands."""

    id: str
    client_id: str
    created_by: str
    title: str = attrs.field(repr=bounded_repr(TEXT))
    description: str = attrs.field(repr=bounded_repr(TEXT))
    urgency: Urgency = attrs.field(repr=enum_repr)
    category: str
    status: RequestStatus = attrs.field(repr=enum_repr)
    created_at: datetime = attrs.field(repr=iso_repr)
    updated_at: datetime = attrs.field(repr=iso_repr)
    template_name: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    execution_id: str | None = None

    def _repr_html_(self) -> str:
        """Jupyter's rich display: title, status, template, execution and description."""
        return _html.request(self)


@attrs.frozen
class ParameterSpec:
    """One template parameter: its type, range, default and which tiers see or edit it.

    `type` is one of `string`, `integer`, `number`, `boolean`, `enum`, `object`, `array`;
    an `object` or `array` value is checked against `schema` (JSON Schema), when given.
    """

    name: str
    type: str
    description: str = attrs.field(default="", repr=bounded_repr(TEXT))
    default: Any = attrs.field(default=None, repr=bounded_repr(TEXT))
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    required: bool = False
    visible_tiers: tuple[Tier, ...] = attrs.field(default=tuple(Tier), repr=enums_repr)
    editable_tiers: tuple[Tier, ...] = attrs.field(default=tuple(Tier), repr=enums_repr)
    schema: dict[str, Any] | None = attrs.field(default=None, repr=bounded_repr(MAPPING))


@attrs.frozen
class StagePolicy:
    """How one stage is retried, timed out and cached; `None` means the orchestrator's default.

    Timeouts in Temporal's terms: `schedule_to_start_s` bounds the wait for a worker to
    accept, `start_to_close_s` one attempt, `heartbeat_s` the silence between two progress
    reports (past it the attempt is abandoned and the stage goes to another worker).
    """

    maximum_attempts: int | None = None
    initial_interval_s: float | None = None
    backoff_coefficient: float | None = None
    maximum_interval_s: float | None = None
    schedule_to_start_s: float | None = None
    start_to_close_s: float | None = None
    heartbeat_s: float | None = None
    cache: bool = True


@attrs.frozen
class StageSpec:
    """One stage of a pipeline template.

    `input_mapping` binds names of the worker's input to earlier outputs
    (`{"structure": "granulate.output.structure"}`) or request parameters
    (`{"topic": "params.topic"}`); `parameters` are stage overrides, the last word in the merge
    (worker defaults < request parameters < stage overrides).
    """

    id: str
    worker: str
    action: str = "process"
    depends_on: tuple[str, ...] = ()
    input_mapping: dict[str, str] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    parameters: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    required: bool = True
    condition: str | None = None
    deliverable: bool = False
    policy: StagePolicy = attrs.field(factory=StagePolicy, repr=compact)


@attrs.frozen
class Template:
    """A pipeline template: who may use it, its parameters and its ordered stages.

    `allow_partial`: a failed required stage does not stop the stages that do not depend on
    it, and if the stages that did finish delivered something, the execution completes
    *partially* (status `completed`, its `error` naming what failed) instead of failing.
    """

    name: str
    display_name: str
    description: str = attrs.field(repr=bounded_repr(TEXT))
    category: str
    tiers: tuple[Tier, ...] = attrs.field(repr=enums_repr)
    # By their ids and names: the full specs are on the attributes (and in the HTML view).
    stages: tuple[StageSpec, ...] = attrs.field(repr=names_repr("id"))
    parameters: tuple[ParameterSpec, ...] = attrs.field(default=(), repr=names_repr("name"))
    keywords: tuple[str, ...] = attrs.field(default=(), repr=bounded_repr(MAPPING))
    max_execution_time_s: int = 600
    allow_partial: bool = False
    estimated_cost_usd: str = "0"

    def allows(self, tier: Tier) -> bool:
        """Whether a client of `tier` may use this template."""
        return tier in self.tiers

    def _repr_html_(self) -> str:
        """Jupyter's rich display: name, description, and its stages and parameters as tables."""
        return _html.template(self)


@attrs.frozen
class Deliverable:
    """A finished product of an execution, stored by reference."""

    id: str
    request_id: str
    client_id: str
    execution_id: str
    type: str
    filename: str
    media_type: str
    ref: StorageRef = attrs.field(repr=ref_repr)
    created_at: datetime = attrs.field(repr=iso_repr)
    metadata: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))

    @property
    def size_bytes(self) -> int:
        """Size of the stored bytes."""
        return self.ref.size

    def _repr_html_(self) -> str:
        """Jupyter's rich display: file name, type, size, storage reference and metadata."""
        return _html.deliverable(self)


@attrs.frozen
class Notification:
    """A message for a user (in-app); `read_at` is set once the user has seen it."""

    id: str
    user_id: str
    kind: str
    message: str = attrs.field(repr=bounded_repr(TEXT))
    created_at: datetime = attrs.field(repr=iso_repr)
    data: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
    read_at: datetime | None = attrs.field(default=None, repr=iso_repr)


@attrs.frozen
class Recommendation:
    """One recommended template, its confidence (0-1) and the reasons for it."""

    template: str
    display_name: str
    confidence: float
    reasons: tuple[str, ...] = attrs.field(repr=bounded_repr(MAPPING))
    estimated_cost_usd: str
    method: str
