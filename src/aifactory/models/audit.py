"""The audit log's record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ._display import MAPPING, bounded_repr, iso_repr

__all__ = ["AuditEvent"]


@attrs.frozen
class AuditEvent:
    """Who did what to which object, when, and how it ended.

    `actor` is `user:<id>`, `anonymous` or `system`; `details` never holds a password, token or
    key (the audit writer strips such fields).
    """

    id: int
    at: datetime = attrs.field(repr=iso_repr)
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any] = attrs.field(factory=dict, repr=bounded_repr(MAPPING))
