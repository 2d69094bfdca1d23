"""The template catalogue: pipeline templates shipped as data in the package."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources

import attrs

from .._exceptions import NotFoundError
from ..models import Template, Tier
from ..orchestrator.planning import validate_template
from ..protocol.codec import structure

__all__ = ["TemplateCatalogue"]


@attrs.define
class _Catalogue:
    templates: list[Template]


class TemplateCatalogue:
    """Pipeline templates by name; validated (a valid DAG) when loaded.

    Raises `BadInputError` at construction for an invalid template.
    """

    def __init__(self, templates: Iterable[Template]) -> None:
        self._by_name: dict[str, Template] = {}
        for template in templates:
            validate_template(template)
            self._by_name[template.name] = template

    @classmethod
    def builtin(cls) -> TemplateCatalogue:
        """The catalogue shipped with aifactory (`aifactory/kam/catalogue.json`)."""
        text = resources.files(__package__).joinpath("catalogue.json").read_text("utf-8")
        return cls(structure(json.loads(text), _Catalogue).templates)

    def list(self, tier: Tier | None = None) -> list[Template]:
        """Templates (allowed for `tier`, if given), by name."""
        return [t for _, t in sorted(self._by_name.items()) if tier is None or t.allows(tier)]

    def get(self, name: str) -> Template:
        """The template `name`. Raises `NotFoundError`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFoundError(
                f"no template {name!r}", details={"template": name, "known": sorted(self._by_name)}
            ) from None
