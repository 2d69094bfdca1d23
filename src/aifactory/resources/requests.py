"""Requests for work and the template catalogue (`session.requests`, `session.templates`)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from ..models import (
    Execution,
    Recommendation,
    Request,
    Template,
    TemplateVersion,
    Tier,
    Urgency,
)
from ._base import AsyncResource

__all__ = ["AsyncRequests", "AsyncTemplates"]


class AsyncRequests(AsyncResource):
    """Requests for work."""

    async def create(
        self,
        title: str,
        description: str = "",
        urgency: Urgency | str = Urgency.NORMAL,
        category: str = "general",
        client_id: str | None = None,
    ) -> Request:
        """Submit a request (staff name the `client_id` they submit for)."""
        return await self._call(
            "requests.create",
            title=title,
            description=description,
            urgency=urgency,
            category=category,
            client_id=client_id,
        )

    async def list(self, client_id: str | None = None) -> builtins.list[Request]:
        """Requests, newest first (client users: their own)."""
        return await self._call("requests.list", client_id=client_id)

    async def get(self, request_id: str) -> Request:
        """One request."""
        return await self._call("requests.get", request_id=request_id)

    async def assign_template(
        self, request_id: str, template_name: str, parameters: dict[str, Any] | None = None
    ) -> Request:
        """Assign a pipeline template and its parameters (staff)."""
        return await self._call(
            "requests.assign_template",
            request_id=request_id,
            template_name=template_name,
            parameters=parameters,
        )

    async def execute(
        self, request_id: str, resources: Mapping[str, Any] | None = None
    ) -> Execution:
        """Start the request's pipeline in the background (staff).

        `resources`: `max_workers` (stages side by side), `timeout_ms` (the whole
        execution's limit), `cache` (reuse results of equal inputs; default true).
        """
        return await self._call("requests.execute", request_id=request_id, resources=resources)


class AsyncTemplates(AsyncResource):
    """The pipeline template catalogue."""

    async def list(self, tier: Tier | str | None = None) -> builtins.list[Template]:
        """Templates allowed for `tier` (client users: their own tier)."""
        return await self._call("templates.list", tier=tier)

    async def get(self, name: str, version: int | None = None) -> Template:
        """A template in use: its latest version, or `version` of it."""
        return await self._call("templates.get", name=name, version=version)

    async def versions(self, name: str) -> builtins.list[TemplateVersion]:
        """Every saved version of a template, oldest first, with who saved it when (staff)."""
        return await self._call("templates.versions", name=name)

    async def create(self, template: Template | dict[str, Any]) -> TemplateVersion:
        """Save a new template (version 1), checked first: a `TemplateError` lists every
        problem with its path (staff)."""
        return await self._call("templates.create", template=template)

    async def update(
        self,
        name: str,
        template: Template | dict[str, Any],
        expected_version: int | None = None,
    ) -> TemplateVersion:
        """Save a new version of template `name`; executions already started keep theirs.
        With `expected_version`, refused (`ConflictError`) if another was saved meanwhile
        (staff)."""
        return await self._call(
            "templates.update", name=name, template=template, expected_version=expected_version
        )

    async def retire(self, name: str) -> TemplateVersion:
        """Retire a template: offered and assigned no more (staff)."""
        return await self._call("templates.retire", name=name)

    async def recommend(
        self, request_id: str, limit: int = 3, use_llm: bool | None = None
    ) -> builtins.list[Recommendation]:
        """Templates that fit a request, ranked with confidence and reasons (staff)."""
        return await self._call(
            "templates.recommend", request_id=request_id, limit=limit, use_llm=use_llm
        )
