"""Template records: the saved versions of pipeline templates (synchronous, see `_sql`).

Templates change only by new versions and retirements, never by deletion, so the number of
versions plus the number of retired ones (`templates_generation`) grows with every change:
a process holding templates in a cache tells with one small read that another changed them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .._exceptions import ConflictError, NotFoundError
from ..models import Template, TemplateVersion
from ..protocol.codec import converter, dumps
from ._sql import Database

__all__ = ["BUILTIN", "TemplateRecords"]

#: The author of the shipped catalogue's versions.
BUILTIN = "builtin"


def _version(row: Any) -> TemplateVersion:
    return TemplateVersion(
        row[0],
        int(row[1]),
        converter.structure(json.loads(row[2]), Template),
        datetime.fromisoformat(row[3]),
        row[4],
        None if row[5] is None else datetime.fromisoformat(row[5]),
    )


_COLUMNS = "name, version, data, created_at, created_by, retired_at"


def template_json(template: Template) -> str:
    """A template as the `data` column keeps it (the codec's JSON, keys sorted)."""
    return dumps(converter.unstructure(template)).decode()


class TemplateRecords(Database):
    """Template versions, the catalogue's generation, and the shipped catalogue's seeding."""

    def templates_generation(self) -> int:
        """How many changes the templates have seen (any process): their versions plus
        their retired versions."""
        row = self._execute("SELECT COUNT(*) + COUNT(retired_at) FROM templates", ()).fetchone()
        return int(row[0])

    def add_template_version(
        self, template: Template, at: datetime, by: str, expected: int | None = None
    ) -> TemplateVersion:
        """Save `template` as the next version of its name (1 for a new name).

        With `expected` (the version the author started from; 0 for a new template), raises
        `ConflictError` if the latest version is another one, so that two authors never
        overwrite each other unknowingly; also for a retired template.
        """
        with self.transaction():
            latest = self._latest(template.name)
            current = 0 if latest is None else latest.version
            if latest is not None and latest.retired:
                raise ConflictError(
                    f"template {template.name!r} is retired", details={"template": template.name}
                )
            if expected is not None and expected != current:
                raise ConflictError(
                    f"template {template.name!r} is at version {current}, not {expected}: "
                    "read it again and apply your change to it",
                    details={"template": template.name, "version": current},
                )
            saved = TemplateVersion(template.name, current + 1, template, at, by)
            self._execute(
                f"INSERT INTO templates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                (saved.name, saved.version, template_json(template), at.isoformat(), by, None),
            )
            return saved

    def retire_template(self, name: str, at: datetime) -> TemplateVersion:
        """Retire the template `name` (every version); returns its latest version.

        Raises `NotFoundError`, and `ConflictError` if it is retired already."""
        with self.transaction():
            latest = self._latest(name)
            if latest is None:
                raise NotFoundError(f"no template {name!r}", details={"template": name})
            if latest.retired:
                raise ConflictError(f"template {name!r} is retired", details={"template": name})
            self._execute(
                "UPDATE templates SET retired_at = ? WHERE name = ? AND retired_at IS NULL",
                (at.isoformat(), name),
            )
            return self._latest(name) or latest

    def template_version(self, name: str, version: int | None = None) -> TemplateVersion:
        """Version `version` of `name` (default: the latest). Raises `NotFoundError`."""
        found = (
            self._latest(name)
            if version is None
            else self._one_version(
                "WHERE name = ? AND version = ?",
                (name, version),
            )
        )
        if found is None:
            which = "" if version is None else f" version {version}"
            raise NotFoundError(
                f"no template {name!r}{which}", details={"template": name, "version": version}
            )
        return found

    def template_versions(self, name: str) -> list[TemplateVersion]:
        """Every version of `name`, oldest first (none: an empty list)."""
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM templates WHERE name = ? ORDER BY version",  # noqa: S608
            (name,),
        ).fetchall()
        return [_version(r) for r in rows]

    def latest_templates(self) -> list[TemplateVersion]:
        """The latest version of every template (retired ones too), by name."""
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM templates t WHERE version = "  # noqa: S608
            "(SELECT MAX(version) FROM templates u WHERE u.name = t.name) ORDER BY name",
            (),
        ).fetchall()
        return [_version(r) for r in rows]

    def seed_templates(self, shipped: Sequence[Template], at: datetime) -> list[str]:
        """Bring the shipped catalogue in: a template new to the store becomes its version 1;
        one whose latest version is the shipped catalogue's own (not changed by staff) and
        differs gets the shipped one as a new version. Templates staff changed or retired
        stay as they are. Returns the names saved. Safe to run from several processes."""
        saved: list[str] = []
        with self.transaction():
            for template in shipped:
                latest = self._latest(template.name)
                if latest is not None and (
                    latest.retired
                    or latest.created_by != BUILTIN
                    or template_json(latest.template) == template_json(template)
                ):
                    continue
                version = 1 if latest is None else latest.version + 1
                row = (template.name, version, template_json(template), at.isoformat(), BUILTIN)
                cursor = self._execute(
                    f"INSERT INTO templates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL) "  # noqa: S608
                    "ON CONFLICT DO NOTHING",
                    row,
                )
                if cursor.rowcount == 1:
                    saved.append(template.name)
        return saved

    def _latest(self, name: str) -> TemplateVersion | None:
        return self._one_version("WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))

    def _one_version(self, where: str, params: tuple[Any, ...]) -> TemplateVersion | None:
        row = self._execute(
            f"SELECT {_COLUMNS} FROM templates {where}",  # noqa: S608
            params,
        ).fetchone()
        return None if row is None else _version(row)
