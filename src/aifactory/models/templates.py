"""A saved version of a pipeline template, as staff keep them in the state store."""

from __future__ import annotations

from datetime import datetime

import attrs

from ._display import iso_repr
from .work import Template

__all__ = ["TemplateVersion"]


@attrs.frozen
class TemplateVersion:
    """Version `version` of the template `name`, saved at `created_at` by `created_by` (an
    audit actor: `user:...`, or `builtin` for the shipped catalogue). `retired_at` is set
    once the template is retired: it is offered and assigned no more, while the executions
    that started with one of its versions keep theirs."""

    name: str
    version: int
    template: Template = attrs.field(repr=lambda t: t.name)
    created_at: datetime = attrs.field(repr=iso_repr)
    created_by: str
    retired_at: datetime | None = attrs.field(default=None, repr=iso_repr)

    @property
    def retired(self) -> bool:
        """Whether the template is retired."""
        return self.retired_at is not None
