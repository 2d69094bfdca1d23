"""Reading a structure tree (a content granulator output) given as stage input.

The validator and the content generator take a granulator tree as input; this module checks
it and reads it into frozen `TreeNode`s, bounding its size (10,000 elements), depth (12
levels) and text (20,000 characters per field). Elements are read in list order; each gets a
`path` such as `"1.2"` from its position among its siblings. A missing title or description
reads as empty text (so a validator can mark it down); anything of the wrong type is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from ..._exceptions import BadInputError

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_TEXT", "StructureTree", "TreeNode", "read_structure"]

MAX_ELEMENTS = 10_000
MAX_DEPTH = 12
MAX_TEXT = 20_000


@attrs.frozen
class TreeNode:
    """One element of a structure tree."""

    path: str
    depth: int
    type: str
    title: str
    description: str
    order: int
    children: tuple[TreeNode, ...] = ()


@attrs.frozen
class StructureTree:
    """A checked structure tree and the facts it states about itself."""

    title: str
    topic: str
    structure_type: str
    granularity: int | None
    target_audience: str
    elements: tuple[TreeNode, ...]

    def walk(self) -> Iterator[TreeNode]:
        """Every element, depth first, in reading order."""
        stack = list(reversed(self.elements))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    @property
    def element_count(self) -> int:
        """How many elements the tree has."""
        return sum(1 for _ in self.walk())

    @property
    def depth(self) -> int:
        """How many levels the tree has (0 when it has no elements)."""
        return max((node.depth for node in self.walk()), default=0)


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInputError(f"{where} must be text", details={"field": where})
    if len(value) > MAX_TEXT:
        raise BadInputError(
            f"{where} is longer than {MAX_TEXT} characters",
            details={"field": where, "limit": MAX_TEXT},
        )
    return " ".join(value.split())


@attrs.define
class _Reader:
    seen: int = 0

    def nodes(self, value: object, where: str, parent: str, depth: int) -> tuple[TreeNode, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise BadInputError(f"{where} must be a list", details={"field": where})
        if value and depth > MAX_DEPTH:
            raise BadInputError(
                f"the structure nests deeper than {MAX_DEPTH} levels",
                details={"limit": MAX_DEPTH},
            )
        self.seen += len(value)
        if self.seen > MAX_ELEMENTS:
            raise BadInputError(
                f"the structure has more than {MAX_ELEMENTS} elements",
                details={"limit": MAX_ELEMENTS},
            )
        return tuple(
            self.node(item, f"{where}[{i}]", f"{parent}{i + 1}", i, depth)
            for i, item in enumerate(value)
        )

    def node(self, value: object, where: str, path: str, index: int, depth: int) -> TreeNode:
        if not isinstance(value, Mapping):
            raise BadInputError(f"{where} must be an object", details={"field": where})
        order = value.get("order", index + 1)
        if isinstance(order, bool) or not isinstance(order, int):
            raise BadInputError(f"{where}.order must be an integer", details={"field": where})
        return TreeNode(
            path=path,
            depth=depth,
            type=_text(value.get("type"), f"{where}.type") or "element",
            title=_text(value.get("title"), f"{where}.title"),
            description=_text(value.get("description"), f"{where}.description"),
            order=order,
            children=self.nodes(value.get("children"), f"{where}.children", f"{path}.", depth + 1),
        )


def read_structure(value: object, field: str = "structure") -> StructureTree:
    """Check and read the structure tree `value` (an object with an `elements` list).

    Optional members read too: `title`, `topic`, `structure_type`, `target_audience` (text)
    and `granularity` (an integer; anything else reads as unknown). Raises `BadInputError`
    naming the offending member.
    """
    if not isinstance(value, Mapping):
        raise BadInputError(f"{field} must be an object", details={"field": field})
    if not isinstance(value.get("elements"), list):
        raise BadInputError(
            f"{field}.elements must be a list of elements", details={"field": f"{field}.elements"}
        )
    granularity = value.get("granularity")
    if isinstance(granularity, bool) or not isinstance(granularity, int):
        granularity = None
    return StructureTree(
        title=_text(value.get("title"), f"{field}.title"),
        topic=_text(value.get("topic"), f"{field}.topic"),
        structure_type=_text(value.get("structure_type"), f"{field}.structure_type"),
        granularity=granularity,
        target_audience=_text(value.get("target_audience"), f"{field}.target_audience"),
        elements=_Reader().nodes(value["elements"], f"{field}.elements", "", 1),
    )
