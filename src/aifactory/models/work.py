"""Requests, pipeline templates, deliverables and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

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
    title: str
    description: str
    urgency: Urgency
    category: str
    status: RequestStatus
    created_at: datetime
    updated_at: datetime
    template_name: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict)
    execution_id: str | None = None


@attrs.frozen
class ParameterSpec:
    """One template parameter: its type, range, default and which tiers see or edit it.

    `type` is one of `string`, `integer`, `number`, `boolean`, `enum`.
    """

    name: str
    type: str
    description: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    required: bool = False
    visible_tiers: tuple[Tier, ...] = tuple(Tier)
    editable_tiers: tuple[Tier, ...] = tuple(Tier)


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
    input_mapping: dict[str, str] = attrs.field(factory=dict)
    parameters: dict[str, Any] = attrs.field(factory=dict)
    required: bool = True
    condition: str | None = None
    deliverable: bool = False
    policy: StagePolicy = attrs.field(factory=StagePolicy)


@attrs.frozen
class Template:
    """A pipeline template: who may use it, its parameters and its ordered stages.

    `allow_partial`: a failed required stage does not stop the stages that do not depend on
    it, and if the stages that did finish delivered something, the execution completes
    *partially* (status `completed`, its `error` naming what failed) instead of failing.
    """

    name: str
    display_name: str
    description: str
    category: str
    tiers: tuple[Tier, ...]
    stages: tuple[StageSpec, ...]
    parameters: tuple[ParameterSpec, ...] = ()
    keywords: tuple[str, ...] = ()
    max_execution_time_s: int = 600
    allow_partial: bool = False
    estimated_cost_usd: str = "0"

    def allows(self, tier: Tier) -> bool:
        """Whether a client of `tier` may use this template."""
        return tier in self.tiers


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
    ref: StorageRef
    created_at: datetime
    metadata: dict[str, Any] = attrs.field(factory=dict)

    @property
    def size_bytes(self) -> int:
        """Size of the stored bytes."""
        return self.ref.size


@attrs.frozen
class Notification:
    """A message for a user (in-app); `read_at` is set once the user has seen it."""

    id: str
    user_id: str
    kind: str
    message: str
    created_at: datetime
    data: dict[str, Any] = attrs.field(factory=dict)
    read_at: datetime | None = None


@attrs.frozen
class Recommendation:
    """One recommended template, its confidence (0-1) and the reasons for it."""

    template: str
    display_name: str
    confidence: float
    reasons: tuple[str, ...]
    estimated_cost_usd: str
    method: str
