"""`TemplateService`: pipeline templates as data, kept in the state store, versioned.

Staff create a template, update it (each save is a new version; executions keep a copy of
the version they started with, so a running one is never changed under it) and retire it
(it is offered and assigned no more). Every save is checked first (`template_checks`) and
audited. The catalogue shipped with aifactory is brought in as version 1 of each built-in
template the first time a process reads templates, and a newer shipped version upgrades a
built-in template staff have not changed.

Reads go through a cache, kept for 24 hours as the seed system's template cache was, and
dropped as soon as the templates change: at once in the process that changed them, and in
any other process sharing the store at its next read after `check_interval_s` (it reads
the store's change counter, `templates_generation`).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import attrs

from .._clock import Clock
from .._exceptions import BadInputError, ConflictError, NotFoundError
from ..models import Principal, Template, TemplateVersion, Tier
from ..protocol.codec import structure, unstructure
from ..state import Store
from .audit import AuditLog
from .catalogue import TemplateCatalogue
from .template_checks import check_template

__all__ = ["CACHE_TTL_S", "TemplateService", "known_workers"]

#: How long read templates are kept before they are read again (the seed's 24 hours).
CACHE_TTL_S = 24 * 3600.0

#: Worker name → the actions it declares (`None`: not known here, any action).
Workers = Mapping[str, frozenset[str] | None]


def known_workers(workers: Any = None) -> dict[str, frozenset[str] | None]:
    """The workers templates may name: `workers` (`Worker` objects, or `None` for the
    built-in ones), by name, with the actions each declares."""
    from ..workers import builtin_workers

    chosen = builtin_workers() if workers is None else workers
    return {w.info.name: frozenset(w.info.actions) for w in chosen}


@attrs.define
class _Cache:
    by_name: dict[str, TemplateVersion]
    generation: int
    loaded_at: float
    checked_at: float


class TemplateService:
    """Templates by name, as the state store keeps them (see the module)."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Clock,
        shipped: TemplateCatalogue,
        workers: Workers | None = None,
        *,
        check_interval_s: float = 1.0,
        ttl_s: float = CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.shipped = shipped
        self.workers = workers
        self.check_interval_s = check_interval_s
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: _Cache | None = None
        self._seeded = False
        self._lock: anyio.Lock | None = None

    # -- reading ---------------------------------------------------------------------------

    async def _current(self) -> dict[str, TemplateVersion]:
        """The latest version of every template, from the cache when it is fresh."""
        now = self._monotonic()
        cache = self._cache
        if cache is not None and now - cache.loaded_at < self.ttl_s:
            if now - cache.checked_at < self.check_interval_s:
                return cache.by_name
            if await self.store.templates_generation() == cache.generation:
                cache.checked_at = now
                return cache.by_name
        if not self._seeded:
            if self._lock is None:
                self._lock = anyio.Lock()
            async with self._lock:
                if not self._seeded:
                    await self.store.seed_templates(self.shipped.list(), self.clock.now())
                    self._seeded = True
        # The counter first: a change committed between the two reads is seen next time.
        generation = await self.store.templates_generation()
        latest = await self.store.latest_templates()
        self._cache = _Cache({v.name: v for v in latest}, generation, now, now)
        return self._cache.by_name

    def _forget(self) -> None:
        self._cache = None

    async def list(self, tier: Tier | None = None) -> builtins.list[Template]:
        """The templates in use (not retired), allowed for `tier` if given, by name."""
        current = await self._current()
        return [
            v.template
            for _, v in sorted(current.items())
            if not v.retired and (tier is None or v.template.allows(tier))
        ]

    async def get(self, name: str, version: int | None = None) -> Template:
        """A template in use (its latest version, or `version` of it). Raises `NotFoundError`
        for an unknown or retired template, or an unknown version."""
        current = (await self._current()).get(name)
        if current is None or current.retired:
            known = sorted(n for n, v in (await self._current()).items() if not v.retired)
            why = "retired" if current is not None else "unknown"
            raise NotFoundError(
                f"no template {name!r} in use ({why})",
                details={"template": name, "known": known},
            )
        if version is None or version == current.version:
            return current.template
        return (await self.store.template_version(name, version)).template

    # -- operations ------------------------------------------------------------------------

    async def list_versions(
        self, principal: Principal, name: str
    ) -> builtins.list[TemplateVersion]:
        """Every version of a template, oldest first (staff). Raises `NotFoundError`."""
        await self._current()  # the shipped catalogue is in the store
        versions = await self.store.template_versions(name)
        if not versions:
            raise NotFoundError(f"no template {name!r}", details={"template": name})
        return versions

    async def create(self, principal: Principal, template: dict[str, Any]) -> TemplateVersion:
        """Save a new template as its version 1, once it passes every check.

        Raises `TemplateError` (a `BadInputError`: `details["problems"]`, each with its
        path), `ConflictError` (the name is taken)."""
        checked = self._checked(template)
        if checked.name in await self._current():
            raise ConflictError(
                f"template {checked.name!r} exists: save a new version of it with update",
                details={"template": checked.name},
            )
        saved = await self.store.add_template_version(
            checked, self.clock.now(), principal.actor, expected=0
        )
        self._forget()
        await self.audit.record(
            principal.actor, "template.create", f"template:{saved.name}", version=1
        )
        return saved

    async def update(
        self,
        principal: Principal,
        name: str,
        template: dict[str, Any],
        expected_version: int | None = None,
    ) -> TemplateVersion:
        """Save a new version of template `name`; executions already started keep theirs.
        With `expected_version`, refuse if someone saved another version meanwhile.

        Raises `TemplateError`, `BadInputError` (the template names another template),
        `NotFoundError`, `ConflictError` (retired, or not at `expected_version`)."""
        checked = self._checked(template)
        if checked.name != name:
            raise BadInputError(
                f"the template is named {checked.name!r}, not {name!r}",
                details={"field": "template.name"},
            )
        before = (await self._current()).get(name)
        if before is None:
            raise NotFoundError(f"no template {name!r}", details={"template": name})
        saved = await self.store.add_template_version(
            checked, self.clock.now(), principal.actor, expected=expected_version
        )
        self._forget()
        changed = sorted(
            field
            for field, value in unstructure(checked).items()
            if unstructure(before.template).get(field) != value
        )
        await self.audit.record(
            principal.actor,
            "template.update",
            f"template:{name}",
            version={"before": before.version, "after": saved.version},
            changed=changed,
        )
        return saved

    async def retire(self, principal: Principal, name: str) -> TemplateVersion:
        """Retire template `name`: it is offered and assigned no more; executions that
        started with it keep their version. Raises `NotFoundError`, `ConflictError`."""
        await self._current()
        retired = await self.store.retire_template(name, self.clock.now())
        self._forget()
        await self.audit.record(
            principal.actor, "template.retire", f"template:{name}", version=retired.version
        )
        return retired

    async def import_templates(
        self, templates: builtins.list[Template], actor: str = "system"
    ) -> builtins.list[TemplateVersion]:
        """Save each template: a new one as version 1, a known one as a new version (unless
        it is unchanged); every one is checked first, and none is saved if one fails.
        For `aifactory templates import`, audited as `actor` (the data folder's owner).

        Raises `TemplateError` (naming the template), `ConflictError` (a retired one)."""
        for template in templates:
            check_template(template, self.workers)
        current = await self._current()
        saved = []
        for template in templates:
            before = current.get(template.name)
            if before is not None and unstructure(before.template) == unstructure(template):
                saved.append(before)
                continue
            version = await self.store.add_template_version(template, self.clock.now(), actor)
            saved.append(version)
            await self.audit.record(
                actor,
                "template.import",
                f"template:{template.name}",
                version=version.version,
                via="cli",
            )
        self._forget()
        return saved

    def _checked(self, data: dict[str, Any]) -> Template:
        return check_template(structure(data, Template, forbid_extra_keys=True), self.workers)
