"""The package map of docs/concepts.md holds: each package imports only from layers below it.

The same holds for the parts of `aifactory.workers` (its subpackages and framework modules),
by the map's "Inside `workers`" table. Imports under `if TYPE_CHECKING:` are left out (they
exist for the type checker only); an import inside a function counts, since it runs when the
function does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aifactory"
DOCS = ROOT / "docs" / "concepts.md"


def _table(heading: str) -> list[set[str]]:
    """The layers of the table under `heading` in docs/concepts.md, lowest first."""
    text = DOCS.read_text()
    section = text[text.index(heading) + len(heading) :]
    following = re.search(r"^#", section, re.M)
    section = section[: following.start()] if following else section
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M)
    assert rows, f"docs/concepts.md has no table under {heading!r}"
    return [{name.strip(" `") for name in names.split(",")} for _, names in rows]


def layers() -> list[set[str]]:
    """The layers as docs/concepts.md's package map lists them, lowest first."""
    return _table("## The package map")


def worker_layers() -> list[set[str]]:
    """The layers of `aifactory.workers`' parts as the package map lists them, lowest first."""
    return _table("### Inside `workers`")


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


def _imported_modules(path: Path) -> Iterator[list[str]]:
    """The module paths (below `aifactory`) that `path` imports at run time."""
    parts = path.relative_to(PACKAGE).parts
    for node in _runtime_imports(ast.parse(path.read_text())):
        if node.level:
            base = list(parts[:-1])
            base = base[: len(base) - (node.level - 1)]
            full = [p for p in [*base, *(node.module or "").split(".")] if p]
        elif node.module and node.module.startswith("aifactory."):
            full = node.module.split(".")[1:]
        else:
            continue
        yield full


def imports_between_packages() -> Iterator[tuple[str, str, str]]:
    """(importing file, its package, imported package) for every import across packages."""
    for path in PACKAGE.rglob("*.py"):
        me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for full in _imported_modules(path):
            if full and full[0] != me:
                yield str(path.relative_to(ROOT)), me, full[0]


def imports_between_worker_parts() -> Iterator[tuple[str, str, str]]:
    """(importing file, its part, imported part) for every import across `workers`' parts.

    A part is a subpackage of `aifactory.workers` or one of its modules (`__init__` too).
    """
    workers = PACKAGE / "workers"
    for path in workers.rglob("*.py"):
        me = path.relative_to(workers).parts[0].removesuffix(".py")
        for full in _imported_modules(path):
            if len(full) > 1 and full[0] == "workers" and full[1] != me:
                yield str(path.relative_to(ROOT)), me, full[1]


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


def test_every_worker_part_is_on_the_map() -> None:
    mapped = set().union(*worker_layers())
    workers = PACKAGE / "workers"
    present = {
        p.name.removesuffix(".py")
        for p in workers.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert present == mapped


def test_worker_parts_import_only_from_layers_below() -> None:
    level = {name: i for i, names in enumerate(worker_layers()) for name in names}
    upward = [
        f"{path}: {me} (layer {level[me]}) imports {other} (layer {level[other]})"
        for path, me, other in imports_between_worker_parts()
        if level[other] >= level[me]
    ]
    assert upward == []


def test_text_imports_nothing_else_of_workers() -> None:
    """`workers/text` stands alone: shared text methods, usable by every worker part."""
    assert [i for i in imports_between_worker_parts() if i[1] == "text"] == []
