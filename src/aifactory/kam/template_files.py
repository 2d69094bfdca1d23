"""Templates as files, to keep in git: JSON or YAML, in the shipped catalogue's own shape.

A file holds `{"templates": [TEMPLATE, ...]}` (what `aifactory templates export` writes and
`aifactory/kam/catalogue.json` is), a list of templates, or one template. YAML is read as
YAML (JSON is YAML too); a template's fields are those of `aifactory.models.Template`, and
a field it does not have is refused, so that a misspelt one is not silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import BadInputError
from ..models import Template
from ..protocol.codec import structure, unstructure

__all__ = ["read_template_file", "templates_from_text", "templates_to_text"]


def templates_to_text(templates: Sequence[Template], fmt: str = "json") -> str:
    """`templates` as a file's text, `fmt` `"json"` (sorted keys, indented) or `"yaml"`."""
    # Through JSON, so that enums and the like are plain values for YAML too.
    document = json.loads(json.dumps({"templates": [unstructure(t) for t in templates]}))
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        text = str(yaml.safe_dump(document, sort_keys=True, allow_unicode=True))
        try:
            if yaml.safe_load(text) == document:
                return text
        except yaml.YAMLError:
            pass
        # Characters YAML cannot hold as they are (controls, line separators): all escaped.
        return str(yaml.safe_dump(document, sort_keys=True, allow_unicode=False))
    raise BadInputError(f"templates are written as json or yaml, not {fmt!r}")


def templates_from_text(text: str, source: str = "the text") -> list[Template]:
    """The templates a file's text holds (see the module). Raises `BadInputError` naming
    `source` and, for a template that does not fit, which one and why."""
    document: Any
    try:
        document = json.loads(text)  # JSON as JSON: YAML reads some characters otherwise
    except json.JSONDecodeError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInputError(f"{source} is neither JSON nor YAML: {exc}") from None
    if isinstance(document, dict) and "templates" in document:
        items = document["templates"]
    elif isinstance(document, dict):
        items = [document]
    else:
        items = document
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadInputError(
            f"{source} holds no templates: a template, a list of them, or {{templates: [...]}}"
        )
    found = []
    for index, item in enumerate(items):
        try:
            found.append(structure(item, Template, forbid_extra_keys=True))
        except BadInputError as exc:
            name = item.get("name", f"#{index + 1}")
            raise BadInputError(
                f"{source}: template {name}: {exc.message}",
                details={"source": source, "template": name, **exc.details},
            ) from None
    return found


def read_template_file(path: Path) -> list[Template]:
    """The templates in the file `path`. Raises `BadInputError` (unreadable, or not
    templates)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read {path}: {exc}") from None
    return templates_from_text(text, str(path))
