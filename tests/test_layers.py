"""The package map of docs/concepts.md holds: each package imports only from layers below it.

Imports under `if TYPE_CHECKING:` are left out (they exist for the type checker only); an
import inside a function counts, since it runs when the function does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aifactory"
DOCS = ROOT / "docs" / "concepts.md"


def layers() -> list[set[str]]:
    """The layers as docs/concepts.md's package map lists them, lowest first."""
    text = DOCS.read_text()
    section = text[text.index("## The package map") :]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M)
    assert rows, "docs/concepts.md has no package map"
    return [{name.strip(" `") for name in names.split(",")} for _, names in rows]


def _runtime_imports(tree: ast.Module) -> Iterator[ast.ImportFrom]:
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
            yield node


def imports_between_packages() -> Iterator[tuple[str, str, str]]:
    """(importing file, its package, imported package) for every import across packages."""
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        me = parts[0].removesuffix(".py")
        for node in _runtime_imports(ast.parse(path.read_text())):
            if node.level:
                base = list(parts[:-1])
                base = base[: len(base) - (node.level - 1)]
                full = [p for p in [*base, *(node.module or "").split(".")] if p]
            elif node.module and node.module.startswith("aifactory."):
                full = node.module.split(".")[1:]
            else:
                continue
            if full and full[0] != me:
                yield str(path.relative_to(ROOT)), me, full[0]


def test_every_package_is_on_the_map() -> None:
    mapped = set().union(*layers())
    present = {
        p.name.removesuffix(".py")
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert present == mapped


def test_packages_import_only_from_layers_below() -> None:
    level = {name: i for i, names in enumerate(layers()) for name in names}
    upward = [
        f"{path}: {me} (layer {level[me]}) imports {other} (layer {level[other]})"
        for path, me, other in imports_between_packages()
        if level[other] >= level[me]
    ]
    assert upward == []
